"""CLIP vision, unCLIP conditioning and style models (ComfyUI's image-prompt nodes; GLIGEN: test_gligen).

Tiny random image towers are built with transformers' own classes and configs and saved in the
layout ComfyUI users download; CLIPVisionEncode is compared with transformers' model called
directly (its weights rounded through fp16, as ComfyUI stores CLIP vision weights).
"""

from __future__ import annotations

import io
import shutil

import numpy
import pytest
import torch
from PIL import Image

from opencomfy.compat import folder_paths
from opencomfy.diffusion.clip_vision import clip_preprocess
from opencomfy.nodes.clip_vision import (CLIPVisionEncode, CLIPVisionLoader, StyleModelApply, StyleModelLoader,
                                         unCLIPCheckpointLoader, unCLIPConditioning)
from tests.harness import Server

CLIP_SETTINGS = dict(hidden_size=128, intermediate_size=256, num_attention_heads=2, num_hidden_layers=3,
                     patch_size=8, image_size=32, projection_dim=48, hidden_act="quick_gelu")
SIGLIP_SETTINGS = dict(hidden_size=128, intermediate_size=256, num_attention_heads=2, num_hidden_layers=2,
                       patch_size=8, image_size=32, hidden_act="gelu_pytorch_tanh", layer_norm_eps=1e-6)


def _perturb(module, seed):
    generator = torch.Generator().manual_seed(seed)
    for name, p in module.named_parameters():
        if "norm" in name:
            p.data += 0.1 * torch.randn(p.shape, generator=generator)
    return module.eval()


def _clip_tower():
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(0)
    return _perturb(CLIPVisionModelWithProjection(CLIPVisionConfig(**CLIP_SETTINGS)), 0)


def _siglip_tower():
    from transformers import SiglipVisionConfig, SiglipVisionModel

    torch.manual_seed(1)
    return _perturb(SiglipVisionModel(SiglipVisionConfig(**SIGLIP_SETTINGS)), 1)


def _style_state(width=128, context_dim=32, layers=1, tokens=4) -> dict:
    """A random T2I-Adapter style model with ComfyUI's key names."""
    g = torch.Generator().manual_seed(5)
    state = {"style_embedding": torch.randn(1, tokens, width, generator=g) * width ** -0.5,
             "proj": torch.randn(width, context_dim, generator=g) * width ** -0.5}
    for norm in ("ln_pre", "ln_post"):
        state[f"{norm}.weight"], state[f"{norm}.bias"] = 1 + 0.1 * torch.randn(width, generator=g), 0.1 * torch.randn(width, generator=g)
    for i in range(layers):
        p = f"transformer_layes.{i}."
        shapes = {"attn.in_proj_weight": (3 * width, width), "attn.in_proj_bias": (3 * width,),
                  "attn.out_proj.weight": (width, width), "attn.out_proj.bias": (width,),
                  "ln_1.weight": (width,), "ln_1.bias": (width,), "ln_2.weight": (width,), "ln_2.bias": (width,),
                  "mlp.c_fc.weight": (4 * width, width), "mlp.c_fc.bias": (4 * width,),
                  "mlp.c_proj.weight": (width, 4 * width), "mlp.c_proj.bias": (width,)}
        for name, shape in shapes.items():
            state[p + name] = torch.randn(shape, generator=g) * 0.05 + (1.0 if name.startswith("ln_") and name.endswith("weight") else 0.0)
    return state


def _to_open_clip(state: dict) -> dict:
    """transformers' vision keys -> open_clip's ``visual.*`` (the inverse of our converter)."""
    out = {}
    simple = {"embeddings.class_embedding": "class_embedding", "embeddings.patch_embedding.weight": "conv1.weight",
              "embeddings.position_embedding.weight": "positional_embedding", "pre_layrnorm.weight": "ln_pre.weight",
              "pre_layrnorm.bias": "ln_pre.bias", "post_layernorm.weight": "ln_post.weight",
              "post_layernorm.bias": "ln_post.bias"}
    parts = {"layer_norm1": "ln_1", "layer_norm2": "ln_2", "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj",
             "self_attn.out_proj": "attn.out_proj"}
    for key, value in state.items():
        if key == "visual_projection.weight":
            out["visual.proj"] = value.t()
            continue
        name = key[len("vision_model."):]
        if name in simple:
            out["visual." + simple[name]] = value
        elif name.startswith("encoder.layers."):
            layer, _, rest = name[len("encoder.layers."):].partition(".")
            part, _, kind = rest.rpartition(".")
            base = f"visual.transformer.resblocks.{layer}."
            if part.startswith("self_attn.") and part != "self_attn.out_proj":
                if part == "self_attn.q_proj":
                    qkv = [state[f"vision_model.encoder.layers.{layer}.self_attn.{p}.{kind}"] for p in ("q_proj", "k_proj", "v_proj")]
                    out[f"{base}attn.in_proj_{kind}"] = torch.cat(qkv)
            else:
                out[base + parts[part] + "." + kind] = value
    return out


def _save(path, state: dict) -> None:
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in state.items()}, str(path))


def _write_models(models) -> None:
    for folder in ("clip_vision", "style_models"):
        (models / folder).mkdir(parents=True, exist_ok=True)
    _save(models / "clip_vision" / "tiny_clip.safetensors", _clip_tower().state_dict())
    _save(models / "clip_vision" / "tiny_open_clip.safetensors", _to_open_clip(_clip_tower().state_dict()))
    siglip = {k if k.startswith("vision_model.") else "vision_model." + k: v      # the files' key names
              for k, v in _siglip_tower().state_dict().items()}
    _save(models / "clip_vision" / "tiny_siglip.safetensors", siglip)
    (models / "clip_vision" / "broken.safetensors").write_bytes(b"garbage")
    _save(models / "style_models" / "tiny_style.safetensors", _style_state())


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    models = tmp_path_factory.mktemp("clip-vision") / "models"
    _write_models(models)
    return models


@pytest.fixture
def folders(models_dir, monkeypatch):
    for kind in ("clip_vision", "style_models"):
        monkeypatch.setitem(folder_paths.folder_names_and_paths, kind,
                            ([str(models_dir / kind)], folder_paths.supported_pt_extensions))
        folder_paths.filename_list_cache.pop(kind, None)
    yield models_dir
    for kind in ("clip_vision", "style_models"):
        folder_paths.filename_list_cache.pop(kind, None)


def _rounded(module):
    """The module with its weights rounded through fp16 (how ComfyUI stores them)."""
    module.load_state_dict({k: v.half().float() for k, v in module.state_dict().items()})
    return module


@pytest.mark.parametrize("name", ["tiny_clip.safetensors", "tiny_open_clip.safetensors"])
def test_encode_matches_transformers_called_directly(folders, name):
    (vision,) = CLIPVisionLoader().load_clip(name)
    image = torch.rand(2, 40, 52, 3)
    (out,) = CLIPVisionEncode().encode(vision, image, "center")
    reference = _rounded(_clip_tower())
    with torch.no_grad():
        expected = reference(pixel_values=clip_preprocess(image, 32), output_hidden_states=True)
    assert out.image_embeds.shape == (2, 48) and out["last_hidden_state"].shape == (2, 17, 128)
    assert torch.allclose(out.image_embeds, expected.image_embeds, atol=1e-5)
    assert torch.allclose(out.last_hidden_state, expected.last_hidden_state, atol=1e-5)
    assert torch.allclose(out.penultimate_hidden_states, expected.hidden_states[-2], atol=1e-5)
    assert out.mm_projected is None


def test_siglip_embeds_are_the_normed_tokens(folders):
    (vision,) = CLIPVisionLoader().load_clip("tiny_siglip.safetensors")
    assert vision.model_type == "siglip_vision_model" and vision.image_mean == [0.5] * 3
    image = torch.rand(1, 32, 32, 3)
    (out,) = CLIPVisionEncode().encode(vision, image, "none")
    reference = _rounded(_siglip_tower())
    with torch.no_grad():
        expected = reference(pixel_values=clip_preprocess(image, 32, [0.5] * 3, [0.5] * 3), output_hidden_states=True)
    assert torch.allclose(out.last_hidden_state, expected.last_hidden_state, atol=1e-5)
    assert torch.equal(out.image_embeds, out.last_hidden_state)
    assert out.all_hidden_states.shape == (1, 2, 16, 128)


def test_preprocess_center_crop_keeps_the_middle_and_none_squashes():
    image = torch.zeros(1, 32, 96, 3)
    image[:, :, :32, 0] = 1.0      # red | green | blue thirds
    image[:, :, 32:64, 1] = 1.0
    image[:, :, 64:, 2] = 1.0
    mean, std = torch.tensor([0.0] * 3).view(3, 1, 1), torch.tensor([1.0] * 3).view(3, 1, 1)
    centre = clip_preprocess(image, 32, mean.flatten().tolist(), std.flatten().tolist(), crop=True)
    assert centre.shape == (1, 3, 32, 32)
    assert torch.allclose(centre[0, 1, :, 4:-4], torch.ones(32, 24), atol=1e-6)
    squashed = clip_preprocess(image, 32, [0.0] * 3, [1.0] * 3, crop=False)
    assert squashed[0, 0, :, :8].mean() > 0.9 and squashed[0, 2, :, -8:].mean() > 0.9
    exact = torch.rand(1, 32, 32, 3)
    normed = clip_preprocess(exact, 32)
    expected = ((exact * 255).round() / 255).movedim(-1, 1)
    mean_t, std_t = torch.tensor([0.48145466, 0.4578275, 0.40821073]), torch.tensor([0.26862954, 0.26130258, 0.27577711])
    assert torch.allclose(normed, (expected - mean_t.view(3, 1, 1)) / std_t.view(3, 1, 1), atol=1e-6)


def test_broken_clip_vision_file_is_a_clear_error(folders):
    with pytest.raises(ValueError, match="broken.safetensors"):
        CLIPVisionLoader().load_clip("broken.safetensors")


def test_unclip_conditioning_appends_entries_and_leaves_the_input_alone():
    output = object()
    cond = [[torch.zeros(1, 77, 32), {"pooled_output": None}]]
    assert unCLIPConditioning().apply_adm(cond, output, 0.0, 0.1)[0] is cond
    (once,) = unCLIPConditioning().apply_adm(cond, output, 1.5, 0.1)
    (twice,) = unCLIPConditioning().apply_adm(once, output, 0.5, 0.0)
    assert "unclip_conditioning" not in cond[0][1]
    assert once[0][1]["unclip_conditioning"] == [{"clip_vision_output": output, "strength": 1.5,
                                                  "noise_augmentation": 0.1}]
    assert [e["strength"] for e in twice[0][1]["unclip_conditioning"]] == [1.5, 0.5]


def test_style_model_appends_tokens_scaled_by_strength(folders):
    (vision,) = CLIPVisionLoader().load_clip("tiny_clip.safetensors")
    (style,) = StyleModelLoader().load_style_model("tiny_style.safetensors")
    assert style.kind == "t2i_style"
    (out,) = CLIPVisionEncode().encode(vision, torch.rand(2, 32, 32, 3), "center")
    text = torch.randn(1, 77, 32)
    cond = [[text, {"x": 1}]]
    (one,) = StyleModelApply().apply_stylemodel(cond, style, out, 1.0, "multiply")
    (two,) = StyleModelApply().apply_stylemodel(cond, style, out, 2.0, "multiply")
    assert one[0][0].shape == (1, 77 + 2 * 4, 32)       # 4 tokens per image, 2 images
    assert torch.equal(one[0][0][:, :77], text) and one[0][1] == {"x": 1}
    assert torch.allclose(two[0][0][:, 77:], 2 * one[0][0][:, 77:], atol=1e-6)
    (biased,) = StyleModelApply().apply_stylemodel(cond, style, out, 0.5, "attn_bias")
    mask = biased[0][1]["attention_mask"]
    assert mask.shape == (1, 86, 86) and mask[0, 0, 85] == 0 and torch.allclose(mask[0, 0, 77:85].float(), torch.log(torch.tensor(0.5)), atol=1e-3)
    with pytest.raises(ValueError, match="different model families"):
        StyleModelApply().apply_stylemodel([[torch.zeros(1, 77, 64), {}]], style, out, 1.0, "multiply")


def test_unsupported_loaders_fail_when_run_naming_what_is_missing(folders):
    with pytest.raises(NotImplementedError, match="unCLIP checkpoints are not supported yet"):
        unCLIPCheckpointLoader().load_checkpoint("any.safetensors")


# --- over HTTP ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_checkpoint):
    base = tmp_path_factory.mktemp("clip-vision-server")
    _write_models(base / "models")
    (base / "models" / "checkpoints").mkdir()
    shutil.copy(tiny_checkpoint[0], base / "models" / "checkpoints" / "tiny_sd1.safetensors")
    srv = Server(base_dir=base).start()
    yield srv
    srv.stop()


def _graph(*, style: bool = False, unclip: bool = False) -> dict:
    graph = {
        "ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny_sd1.safetensors"}},
        "pos": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red fox", "clip": ["ckpt", 1]}},
        "neg": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["ckpt", 1]}},
        "picture": {"class_type": "EmptyImage", "inputs": {"width": 40, "height": 32, "batch_size": 1, "color": 0xAA3311}},
        "vision": {"class_type": "CLIPVisionLoader", "inputs": {"clip_name": "tiny_open_clip.safetensors"}},
        "seen": {"class_type": "CLIPVisionEncode", "inputs": {"clip_vision": ["vision", 0], "image": ["picture", 0],
                                                              "crop": "center"}},
        "latent": {"class_type": "EmptyLatentImage", "inputs": {"width": 32, "height": 32, "batch_size": 1}},
        "sample": {"class_type": "KSampler", "inputs": {
            "seed": 3, "steps": 2, "cfg": 4.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0,
            "model": ["ckpt", 0], "positive": ["pos", 0], "negative": ["neg", 0], "latent_image": ["latent", 0]}},
        "decode": {"class_type": "VAEDecode", "inputs": {"samples": ["sample", 0], "vae": ["ckpt", 2]}},
        "save": {"class_type": "SaveImage", "inputs": {"images": ["decode", 0], "filename_prefix": "cv"}},
    }
    if style:
        graph["style"] = {"class_type": "StyleModelLoader", "inputs": {"style_model_name": "tiny_style.safetensors"}}
        graph["styled"] = {"class_type": "StyleModelApply", "inputs": {
            "conditioning": ["pos", 0], "style_model": ["style", 0], "clip_vision_output": ["seen", 0],
            "strength": 1.0, "strength_type": "multiply"}}
        graph["sample"]["inputs"]["positive"] = ["styled", 0]
    if unclip:
        graph["unclip"] = {"class_type": "unCLIPConditioning", "inputs": {
            "conditioning": ["pos", 0], "clip_vision_output": ["seen", 0], "strength": 1.0, "noise_augmentation": 0.0}}
        graph["sample"]["inputs"]["positive"] = ["unclip", 0]
    return graph


def _run(server: Server, graph: dict) -> dict:
    r = server.post("/api/prompt", {"prompt": graph})
    assert r.status == 200, r.body
    return server.wait_for_job(r.json()["prompt_id"], timeout=120)


def _pixels(server: Server, entry: dict, node: str = "save") -> numpy.ndarray:
    saved = entry["outputs"][node]["images"][0]
    r = server.get(f"/api/view?filename={saved['filename']}&subfolder={saved['subfolder']}&type={saved['type']}")
    return numpy.asarray(Image.open(io.BytesIO(r.body)).convert("RGB"))


def test_http_style_model_changes_the_image(server):
    plain = _run(server, _graph())
    styled = _run(server, _graph(style=True))
    assert plain["status"]["status_str"] == "success", plain["status"]
    assert styled["status"]["status_str"] == "success", styled["status"]
    a, b = _pixels(server, plain), _pixels(server, styled)
    assert a.shape == b.shape == (32, 32, 3)
    assert numpy.abs(a.astype(int) - b.astype(int)).max() > 0


def test_http_unclip_conditioning_reaching_the_sampler_is_a_clear_node_error(server):
    entry = _run(server, _graph(unclip=True))
    assert entry["status"]["status_str"] == "error"
    error = next(m[1] for m in entry["status"]["messages"] if m[0] == "execution_error")
    assert error["node_id"] == "sample" and "unCLIP" in error["exception_message"]


def test_http_pixel_space_vae_round_trips_an_image(server):
    graph = {
        "picture": {"class_type": "EmptyImage", "inputs": {"width": 24, "height": 16, "batch_size": 1, "color": 0x3366CC}},
        "vae": {"class_type": "VAELoader", "inputs": {"vae_name": "pixel_space"}},
        "enc": {"class_type": "VAEEncode", "inputs": {"pixels": ["picture", 0], "vae": ["vae", 0]}},
        "dec": {"class_type": "VAEDecode", "inputs": {"samples": ["enc", 0], "vae": ["vae", 0]}},
        "save": {"class_type": "SaveImage", "inputs": {"images": ["dec", 0], "filename_prefix": "px"}},
    }
    entry = _run(server, graph)
    assert entry["status"]["status_str"] == "success", entry["status"]
    pixels = _pixels(server, entry)
    assert pixels.shape == (16, 24, 3)
    # SaveImage truncates to 8 bits (as ComfyUI), so a value a hair under n comes back as n - 1
    assert numpy.abs(pixels.astype(int) - numpy.array([0x33, 0x66, 0xCC])).max() <= 1

