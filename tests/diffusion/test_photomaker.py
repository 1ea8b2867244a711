"""PhotoMaker on the tiny SD 1.x CLIP: a random ID encoder (a tiny transformers CLIP image tower,
a second projection and the fuse MLPs) saved in the layouts PhotoMaker files come in.

PhotoMakerEncode is compared with the same computation written out by hand: the prompt encoded
with the class word repeated once per photo and the trigger word gone, and each copy of the
class word's token fused with one photo's ID embedding through the two MLPs and the layer norm.
"""

from __future__ import annotations

import shutil

import pytest
import torch
import torch.nn.functional as F

from opencomfy.compat import folder_paths
from opencomfy.config import ALLOW_PICKLE_ENV
from opencomfy.diffusion.clip_vision import clip_preprocess
from opencomfy.nodes.diffusion_sampling import KSampler
from opencomfy.nodes.photomaker import PhotoMakerEncode, PhotoMakerLoader
from opencomfy.weights import UnsupportedCheckpoint
from tests.harness import Server

TOWER = dict(hidden_size=128, intermediate_size=256, num_attention_heads=2, num_hidden_layers=2,
             patch_size=8, image_size=32, projection_dim=16, hidden_act="quick_gelu")


def _id_encoder(second: int = 16, seed: int = 0) -> dict:
    """Random ``id_encoder`` weights: the tower's projection (16) + ``second`` = the fuse width."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    state = dict(CLIPVisionModelWithProjection(CLIPVisionConfig(**TOWER)).state_dict())
    dim = TOWER["projection_dim"] + second
    state["visual_projection_2.weight"] = torch.randn(second, TOWER["hidden_size"], generator=g) * 0.1
    shapes = {"mlp1": (2 * dim, dim), "mlp2": (dim, dim)}
    for mlp, (wide, narrow) in shapes.items():
        p = f"fuse_module.{mlp}."
        state[p + "layernorm.weight"] = 1 + 0.1 * torch.randn(wide, generator=g)
        state[p + "layernorm.bias"] = 0.1 * torch.randn(wide, generator=g)
        state[p + "fc1.weight"] = torch.randn(narrow, wide, generator=g) * wide ** -0.5
        state[p + "fc1.bias"] = 0.1 * torch.randn(narrow, generator=g)
        state[p + "fc2.weight"] = torch.randn(narrow, narrow, generator=g) * narrow ** -0.5
        state[p + "fc2.bias"] = 0.1 * torch.randn(narrow, generator=g)
    state["fuse_module.layer_norm.weight"] = 1 + 0.1 * torch.randn(dim, generator=g)
    state["fuse_module.layer_norm.bias"] = 0.1 * torch.randn(dim, generator=g)
    return {k: v.contiguous() for k, v in state.items()}


def _write(folder) -> None:
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    weights = _id_encoder()
    save_file(weights, str(folder / "pm.safetensors"))
    prefixed = {f"id_encoder.{k}": v for k, v in weights.items()}
    save_file({**prefixed, "lora_weights.unet.x.lora.down.weight": torch.zeros(2, 2)},
              str(folder / "pm_prefixed.safetensors"))
    torch.save({"id_encoder": weights, "lora_weights": {"x": torch.zeros(2)}}, str(folder / "pm_v1.bin"))
    save_file(_id_encoder(second=32), str(folder / "pm_wide.safetensors"))
    save_file({"x": torch.zeros(1)}, str(folder / "not_photomaker.safetensors"))


@pytest.fixture(scope="module")
def pm_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photomaker") / "photomaker"
    _write(folder)
    return folder


@pytest.fixture
def folders(pm_dir, monkeypatch):
    monkeypatch.setitem(folder_paths.folder_names_and_paths, "photomaker",
                        ([str(pm_dir)], folder_paths.supported_pt_extensions))
    folder_paths.filename_list_cache.pop("photomaker", None)
    yield pm_dir
    folder_paths.filename_list_cache.pop("photomaker", None)


def _rounded(state: dict) -> dict:
    """The weights as they are kept (ComfyUI stores these encoders in fp16)."""
    return {k: v.half().float() for k, v in state.items()}


def _id_embeds_by_hand(state: dict, image: torch.Tensor) -> torch.Tensor:
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    tower = CLIPVisionModelWithProjection(CLIPVisionConfig(**TOWER)).eval()
    tower.load_state_dict({k: v for k, v in state.items() if k.startswith(("vision_model.", "visual_projection."))})
    with torch.no_grad():
        pooled = tower.vision_model(pixel_values=clip_preprocess(image, 32)).pooler_output
        return torch.cat([pooled @ state["visual_projection.weight"].t(),
                          pooled @ state["visual_projection_2.weight"].t()], dim=-1)


def _fuse_by_hand(state: dict, tokens: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    def mlp(x, name, residual):
        p = f"fuse_module.{name}."
        h = F.layer_norm(x, (x.shape[-1],), state[p + "layernorm.weight"], state[p + "layernorm.bias"])
        h = F.linear(F.gelu(F.linear(h, state[p + "fc1.weight"], state[p + "fc1.bias"])),
                     state[p + "fc2.weight"], state[p + "fc2.bias"])
        return h + x if residual else h

    fused = mlp(mlp(torch.cat([tokens, ids], dim=-1), "mlp1", False) + tokens, "mlp2", True)
    return F.layer_norm(fused, (fused.shape[-1],), state["fuse_module.layer_norm.weight"],
                        state["fuse_module.layer_norm.bias"])


def _expected(clip, image: torch.Tensor, reference_text: str, class_word: str, photos: int):
    """The conditioning by hand: ``reference_text`` already holds the class word ``photos`` times."""
    state = _rounded(_id_encoder())
    tokens = clip.tokenize(reference_text)
    cond, pooled = clip.encode_from_tokens(tokens, return_pooled=True)
    (class_id,) = clip.tokenizer(class_word, add_special_tokens=False)["input_ids"]
    start = [t for t, _ in tokens["l"][0]].index(class_id)
    cond = cond.clone()
    with torch.no_grad():
        ids = _id_embeds_by_hand(state, image)
        cond[0, start:start + photos] = _fuse_by_hand(state, cond[0, start:start + photos], ids)
    return cond, pooled


@pytest.mark.parametrize("photos", [1, 3])
def test_encode_equals_the_fusion_written_out_by_hand(folders, tiny_models, photos):
    clip = tiny_models[1]
    (pm,) = PhotoMakerLoader().execute("pm.safetensors")
    image = torch.rand(photos, 40, 36, 3, generator=torch.Generator().manual_seed(photos))
    (cond,) = PhotoMakerEncode().execute(pm, image, clip, "a photo of a man photomaker riding a bike")
    stacked = " ".join(["man"] * photos)
    expected, pooled = _expected(clip, image, f"a photo of a {stacked} riding a bike", "man", photos)
    assert len(cond) == 1 and cond[0][0].shape == expected.shape == (1, 77, 32)
    assert torch.allclose(cond[0][0], expected, atol=1e-5)
    assert torch.equal(cond[0][1]["pooled_output"], pooled)
    # Only the class word's copies changed.
    plain = clip.encode_from_tokens(clip.tokenize(f"a photo of a {stacked} riding a bike"))
    changed = (cond[0][0] - plain).abs().amax(-1)[0] > 1e-6
    assert changed.sum() == photos


def test_without_the_trigger_word_it_is_plain_text_encoding(folders, tiny_models):
    clip = tiny_models[1]
    (pm,) = PhotoMakerLoader().execute("pm.safetensors")
    (cond,) = PhotoMakerEncode().execute(pm, torch.rand(1, 32, 32, 3), clip, "a photo of a man")
    expected, pooled = clip.encode_from_tokens(clip.tokenize("a photo of a man"), return_pooled=True)
    assert torch.equal(cond[0][0], expected) and torch.equal(cond[0][1]["pooled_output"], pooled)


def test_every_file_layout_loads_the_same_weights(folders, monkeypatch):
    monkeypatch.setenv(ALLOW_PICKLE_ENV, "1")
    models = [PhotoMakerLoader().execute(n)[0] for n in ("pm.safetensors", "pm_prefixed.safetensors", "pm_v1.bin")]
    reference = models[0].model.state_dict()
    assert models[0].dim == 32 and models[0].image_size == 32
    for other in models[1:]:
        assert all(torch.equal(v, other.model.state_dict()[k]) for k, v in reference.items())


def test_bad_prompts_and_files_are_clear_errors(folders, tiny_models):
    clip = tiny_models[1]
    (pm,) = PhotoMakerLoader().execute("pm.safetensors")
    with pytest.raises(ValueError, match="class word"):
        PhotoMakerEncode().execute(pm, torch.rand(1, 32, 32, 3), clip, "photomaker in a park")
    with pytest.raises(ValueError, match="no room in the prompt"):
        PhotoMakerEncode().execute(pm, torch.rand(3, 32, 32, 3), clip, " ".join(["x"] * 73) + " man photomaker")
    (wide,) = PhotoMakerLoader().execute("pm_wide.safetensors")
    with pytest.raises(ValueError, match="48-wide text tokens"):
        PhotoMakerEncode().execute(wide, torch.rand(1, 32, 32, 3), clip, "a man photomaker")
    with pytest.raises(UnsupportedCheckpoint, match="not_photomaker.safetensors is not a PhotoMaker ID encoder"):
        PhotoMakerLoader().execute("not_photomaker.safetensors")


# --- over HTTP ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_checkpoint):
    base = tmp_path_factory.mktemp("photomaker-server")
    (base / "models" / "checkpoints").mkdir(parents=True)
    shutil.copy(tiny_checkpoint[0], base / "models" / "checkpoints" / "tiny_sd1.safetensors")
    _write(base / "models" / "photomaker")
    srv = Server(base_dir=base).start()
    yield srv
    srv.stop()


def _graph(text: str) -> dict:
    return {
        "ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny_sd1.safetensors"}},
        "pm": {"class_type": "PhotoMakerLoader", "inputs": {"photomaker_model_name": "pm.safetensors"}},
        "face": {"class_type": "EmptyImage", "inputs": {"width": 40, "height": 32, "batch_size": 1,
                                                         "color": 0xC08060}},
        "pos": {"class_type": "PhotoMakerEncode", "inputs": {"photomaker": ["pm", 0], "image": ["face", 0],
                                                             "clip": ["ckpt", 1], "text": text}},
        "neg": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["ckpt", 1]}},
        "latent": {"class_type": "EmptyLatentImage", "inputs": {"width": 32, "height": 32, "batch_size": 1}},
        "sample": {"class_type": "KSampler", "inputs": {
            "seed": 2, "steps": 2, "cfg": 3.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0,
            "model": ["ckpt", 0], "positive": ["pos", 0], "negative": ["neg", 0], "latent_image": ["latent", 0]}},
        "save": {"class_type": "SaveLatent", "inputs": {"samples": ["sample", 0], "filename_prefix": "pm"}},
    }


def test_http_photomaker_conditioning_reaches_the_sampler(server, tiny_models, pm_dir, monkeypatch):
    from safetensors.torch import load

    info = server.get("/api/object_info/PhotoMakerLoader").json()["PhotoMakerLoader"]
    assert "pm.safetensors" in info["input"]["required"]["photomaker_model_name"][1]["options"]
    r = server.post("/api/prompt", {"prompt": _graph("a portrait of a woman photomaker smiling")})
    assert r.status == 200, r.body
    entry = server.wait_for_job(r.json()["prompt_id"], timeout=120)
    assert entry["status"]["status_str"] == "success", entry["status"]
    saved = entry["outputs"]["save"]["latents"][0]
    body = server.get(f"/api/view?filename={saved['filename']}&subfolder={saved['subfolder']}&type=output").body
    latent = load(body)["latent_tensor"]
    # The same graph in this process, node by node.
    monkeypatch.setitem(folder_paths.folder_names_and_paths, "photomaker",
                        ([str(pm_dir)], folder_paths.supported_pt_extensions))
    folder_paths.filename_list_cache.pop("photomaker", None)
    model, clip = tiny_models[0], tiny_models[1]
    face = torch.empty(1, 32, 40, 3)
    face[..., 0], face[..., 1], face[..., 2] = 0xC0 / 255, 0x80 / 255, 0x60 / 255
    (pm,) = PhotoMakerLoader().execute("pm.safetensors")
    (positive,) = PhotoMakerEncode().execute(pm, face, clip, "a portrait of a woman photomaker smiling")
    negative = [[clip.encode_from_tokens(clip.tokenize("")), {}]]
    kwargs = dict(latent_image={"samples": torch.zeros(1, 4, 4, 4)}, denoise=1.0)
    (expected,) = KSampler().sample(model, 2, 2, 3.0, "euler", "normal", positive, negative, **kwargs)
    assert torch.allclose(latent, expected["samples"], rtol=1e-4, atol=1e-4)
    plain = [[clip.encode_from_tokens(clip.tokenize("a portrait of a woman smiling")), {}]]
    (unfused,) = KSampler().sample(model, 2, 2, 3.0, "euler", "normal", plain, negative, **kwargs)
    assert not torch.allclose(latent, unfused["samples"], atol=1e-3)
