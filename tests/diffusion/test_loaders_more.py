"""The less common loaders against independent expectations: CheckpointLoader's config (its
v-prediction is ModelSamplingDiscrete's, its CLIP layer CLIPSetLastLayer's), a hypernetwork file
in ComfyUI's layout (the attention inputs moved by the MLPs computed here by hand), an
image-conditioned checkpoint saved by ImageOnlyCheckpointSave and loaded back, and a LORA_MODEL
(W + strength * up @ down)."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from opencomfy.compat import folder_paths
from opencomfy.diffusion.memory import models_in_use
from opencomfy.nodes import diffusion_conditioning as cn
from opencomfy.nodes import model_loaders_extra as ml
from opencomfy.nodes import model_saving as ms
from opencomfy.nodes.diffusion_loaders import CLIPSetLastLayer
from opencomfy.nodes.diffusion_model_advanced import ModelSamplingDiscrete
from opencomfy.weights import PickleRefused, UnsupportedCheckpoint
from tests.diffusion.test_clip_vision import _clip_tower, _rounded

PROJ_IN = "diffusion_model.input_blocks.1.1.proj_in"

V_CONFIG = """model:
  target: ldm.models.diffusion.ddpm.LatentDiffusion
  params:
    parameterization: "v"
    cond_stage_config:
      target: ldm.modules.encoders.modules.FrozenCLIPEmbedder
      params:
        layer_idx: -2
"""
EPS_CONFIG = "model:\n  params:\n    linear_start: 0.00085\n"


def _folder(monkeypatch, kind: str, path) -> None:
    monkeypatch.setitem(folder_paths.folder_names_and_paths, kind, ([str(path)], folder_paths.supported_pt_extensions
                                                                    | {".yaml"}))
    folder_paths.filename_list_cache.pop(kind, None)


@pytest.fixture
def folders(tmp_path, monkeypatch, tiny_checkpoint):
    """checkpoints (the tiny one), configs, hypernetworks: empty folders beside it."""
    import shutil

    for kind in ("checkpoints", "configs", "hypernetworks"):
        (tmp_path / kind).mkdir()
        _folder(monkeypatch, kind, tmp_path / kind)
    shutil.copy(tiny_checkpoint[0], tmp_path / "checkpoints" / "tiny.safetensors")
    previous = folder_paths.get_output_directory()
    folder_paths.set_output_directory(str(tmp_path / "output"))
    yield tmp_path
    folder_paths.set_output_directory(previous)
    for kind in ("checkpoints", "configs", "hypernetworks"):
        folder_paths.filename_list_cache.pop(kind, None)


def _denoise(model, options=None, sigma: float = 2.0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    x, context = torch.randn(1, 4, 8, 8, generator=gen), torch.randn(1, 77, 32, generator=gen)
    with torch.no_grad():
        return model.denoise_batch(x, sigma, context, model_options=options if options is not None
                                   else model.model_options, cond_or_uncond=[0])


# --- CheckpointLoader -----------------------------------------------------------------------------

def test_checkpoint_loader_applies_the_configs_prediction_and_clip_layer(folders, tiny_models):
    (folders / "configs" / "v.yaml").write_text(V_CONFIG)
    (folders / "configs" / "eps.yaml").write_text(EPS_CONFIG)
    plain_model, plain_clip, _ = tiny_models
    model, clip, vae = ml.CheckpointLoader().load_checkpoint("v.yaml", "tiny.safetensors")
    assert vae is not None
    (expected_model,) = ModelSamplingDiscrete().patch(plain_model, "v_prediction", False)
    torch.testing.assert_close(_denoise(model), _denoise(expected_model))
    assert not torch.allclose(_denoise(model), _denoise(plain_model), atol=1e-3)
    (expected_clip,) = CLIPSetLastLayer().set_last_layer(plain_clip, -2)
    encoded = cn.CLIPTextEncode().encode(clip, "a lighthouse")[0][0][0]
    torch.testing.assert_close(encoded, cn.CLIPTextEncode().encode(expected_clip, "a lighthouse")[0][0][0])
    assert not torch.allclose(encoded, cn.CLIPTextEncode().encode(plain_clip, "a lighthouse")[0][0][0], atol=1e-3)

    eps_model, eps_clip, _ = ml.CheckpointLoader().load_checkpoint("eps.yaml", "tiny.safetensors")
    torch.testing.assert_close(_denoise(eps_model), _denoise(plain_model))
    torch.testing.assert_close(cn.CLIPTextEncode().encode(eps_clip, "a lighthouse")[0][0][0],
                               cn.CLIPTextEncode().encode(plain_clip, "a lighthouse")[0][0][0])


def test_checkpoint_loader_refuses_a_config_it_cannot_read(folders):
    (folders / "configs" / "broken.yaml").write_text("model: [unclosed\n")
    (folders / "configs" / "other.yaml").write_text("something: else\n")
    with pytest.raises(ValueError, match="broken.yaml is not valid YAML"):
        ml.CheckpointLoader().load_checkpoint("broken.yaml", "tiny.safetensors")
    with pytest.raises(ValueError, match="other.yaml is not an LDM model config"):
        ml.CheckpointLoader().load_checkpoint("other.yaml", "tiny.safetensors")


# --- HypernetworkLoader ---------------------------------------------------------------------------

def _mlp(width: int, seed: int) -> dict[str, torch.Tensor]:
    """One stack as A1111 saves it: linear.0 (width -> 2 width), linear.2 (2 width -> width)."""
    g = torch.Generator().manual_seed(seed)
    return {"linear.0.weight": torch.randn(2 * width, width, generator=g) * 0.3,
            "linear.0.bias": torch.randn(2 * width, generator=g) * 0.1,
            "linear.2.weight": torch.randn(width, 2 * width, generator=g) * 0.3,
            "linear.2.bias": torch.randn(width, generator=g) * 0.1}


def _hypernetwork() -> dict:
    return {32: [_mlp(32, 1), _mlp(32, 2)], 64: [_mlp(64, 3), _mlp(64, 4)], "activation_func": "relu",
            "is_layer_norm": False, "use_dropout": True, "activate_output": False, "last_layer_dropout": False,
            "name": "tiny", "step": 100}


def _by_hand(data: dict, strength: float):
    """The hypernetwork patch written out: k + strength * mlp_k(k), v + strength * mlp_v(v)."""
    def mlp(w, t):
        hidden = torch.relu(t @ w["linear.0.weight"].T + w["linear.0.bias"])
        return hidden @ w["linear.2.weight"].T + w["linear.2.bias"]

    def patch(q, k, v, extra_options):
        stacks = data.get(k.shape[-1])
        if stacks is None:
            return q, k, v
        return q, k + strength * mlp(stacks[0], k), v + strength * mlp(stacks[1], v)
    return patch


def test_hypernetwork_moves_keys_and_values_by_its_mlps(folders, tiny_models, monkeypatch):
    monkeypatch.setenv("OPENCOMFY_ALLOW_PICKLE", "1")
    data = _hypernetwork()
    torch.save(data, folders / "hypernetworks" / "tiny.pt")
    model = tiny_models[0]
    (patched,) = ml.HypernetworkLoader().load_hypernetwork(model, "tiny.pt", 0.7)
    by_hand = _by_hand(data, 0.7)
    expected = _denoise(model, {"transformer_options": {"patches": {"attn1_patch": [by_hand],
                                                                     "attn2_patch": [by_hand]}}})
    torch.testing.assert_close(_denoise(patched), expected, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(expected, _denoise(model), atol=1e-3)
    assert model.model_options.get("transformer_options", {}).get("patches", {}).get("attn1_patch") is None
    (zero,) = ml.HypernetworkLoader().load_hypernetwork(model, "tiny.pt", 0.0)
    torch.testing.assert_close(_denoise(zero), _denoise(model))


def test_hypernetwork_files_it_cannot_read_are_refused(folders, tiny_models, monkeypatch):
    model = tiny_models[0]
    torch.save(_hypernetwork(), folders / "hypernetworks" / "tiny.pt")
    monkeypatch.delenv("OPENCOMFY_ALLOW_PICKLE", raising=False)
    with pytest.raises(PickleRefused, match="tiny.pt is a pickle hypernetwork.*OPENCOMFY_ALLOW_PICKLE=1"):
        ml.HypernetworkLoader().load_hypernetwork(model, "tiny.pt", 1.0)
    monkeypatch.setenv("OPENCOMFY_ALLOW_PICKLE", "1")
    save_file({"x": torch.zeros(1)}, str(folders / "hypernetworks" / "flat.safetensors"))
    with pytest.raises(UnsupportedCheckpoint, match="safetensors files cannot hold"):
        ml.HypernetworkLoader().load_hypernetwork(model, "flat.safetensors", 1.0)
    torch.save({**_hypernetwork(), "activation_func": "gelu2"}, folders / "hypernetworks" / "odd.pt")
    with pytest.raises(UnsupportedCheckpoint, match="unknown activation 'gelu2'"):
        ml.HypernetworkLoader().load_hypernetwork(model, "odd.pt", 1.0)
    torch.save({"activation_func": "relu"}, folders / "hypernetworks" / "empty.pt")
    with pytest.raises(UnsupportedCheckpoint, match="has no layers"):
        ml.HypernetworkLoader().load_hypernetwork(model, "empty.pt", 1.0)


# --- ImageOnlyCheckpointLoader / ImageOnlyCheckpointSave -----------------------------------------

def _unet(model) -> dict[str, torch.Tensor]:
    with models_in_use(model):
        return {k: v.detach().clone() for k, v in model.model_state_dict("diffusion_model.").items()}


def test_image_only_checkpoint_round_trip(folders, tiny_checkpoint, tiny_models):
    from opencomfy.weights import read_state_dict

    tower = _clip_tower()
    state = {**read_state_dict(str(tiny_checkpoint[0])), **tower.state_dict()}
    save_file({k: v.contiguous() for k, v in state.items()}, str(folders / "checkpoints" / "img.safetensors"))
    model, vision, vae = ml.ImageOnlyCheckpointLoader().load_checkpoint("img.safetensors")
    image = torch.rand(1, 32, 32, 3, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        from opencomfy.diffusion.clip_vision import clip_preprocess

        # (CLIP vision weights are kept in fp16, as ComfyUI keeps them)
        expected = _rounded(_clip_tower())(pixel_values=clip_preprocess(image, 32)).image_embeds
    torch.testing.assert_close(vision.encode_image(image).image_embeds, expected, atol=1e-4, rtol=1e-4)
    wa = _unet(tiny_models[0])
    assert all(torch.equal(v, wa[k]) for k, v in _unet(model).items())

    # Saved with its CLIP vision tower and VAE, it loads back the same.
    ms.ImageOnlyCheckpointSave().save(model, vision, vae, "checkpoints/img_saved")
    saved = folders / "output" / "checkpoints" / "img_saved_00001_.safetensors"
    assert saved.is_file()
    (folders / "checkpoints" / "again.safetensors").write_bytes(saved.read_bytes())
    model2, vision2, vae2 = ml.ImageOnlyCheckpointLoader().load_checkpoint("again.safetensors")
    assert all(torch.equal(v, wa[k]) for k, v in _unet(model2).items())
    torch.testing.assert_close(vision2.encode_image(image).image_embeds, expected, atol=1e-4, rtol=1e-4)
    pixels = torch.rand(1, 32, 32, 3, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(vae2.encode(pixels), vae.encode(pixels))

    # A checkpoint without a vision tower gives none; SVD's video UNet is refused by name.
    _, none_vision, _ = ml.ImageOnlyCheckpointLoader().load_checkpoint("tiny.safetensors")
    assert none_vision is None
    save_file({"model.diffusion_model.input_blocks.1.0.time_stack.0.weight": torch.zeros(1)},
              str(folders / "checkpoints" / "svd.safetensors"))
    with pytest.raises(UnsupportedCheckpoint, match="Stable Video Diffusion models are not supported yet"):
        ml.ImageOnlyCheckpointLoader().load_checkpoint("svd.safetensors")


# --- LoraModelLoader ------------------------------------------------------------------------------

def test_lora_model_adds_up_times_down_at_its_strength(tiny_models):
    model = tiny_models[0]
    w = _unet(model)[PROJ_IN + ".weight"]
    out_features, in_features = w.shape[:2]
    g = torch.Generator().manual_seed(8)
    down, up = torch.randn(4, in_features, generator=g), torch.randn(out_features, 4, generator=g)
    lora = {PROJ_IN + ".lora_down.weight": down, PROJ_IN + ".lora_up.weight": up}
    (patched,) = ml.LoraModelLoader().execute(model, lora, 0.5)
    weights = _unet(patched)
    torch.testing.assert_close(weights[PROJ_IN + ".weight"], w + 0.5 * (up @ down).reshape(w.shape))
    others = [k for k, v in weights.items() if k != PROJ_IN + ".weight" and not torch.equal(v, _unet(model)[k])]
    assert others == []
    assert ml.LoraModelLoader().execute(model, lora, 0.0)[0] is model
    with pytest.raises(ValueError, match="lora must be a dictionary"):
        ml.LoraModelLoader().execute(model, [down, up], 1.0)
    with pytest.raises(ValueError, match="none of the LoRA's weights match"):
        ml.LoraModelLoader().execute(model, {"nowhere.lora_up.weight": up, "nowhere.lora_down.weight": down}, 1.0)
