"""Single-file checkpoints: layout detection, conversion, refusal of pickles and odd files."""

from __future__ import annotations

import pytest
import torch

from opencomfy.diffusion.detect import UnsupportedCheckpoint, detect_layout
from opencomfy.diffusion.loading import load_checkpoint_file
from opencomfy.weights import PickleRefused, read_state_dict


def _same_weights(a: torch.nn.Module, b: torch.nn.Module, *, fp16_stored: bool = False) -> None:
    """``fp16_stored``: ``b`` holds ``a``'s weights rounded to fp16, as ComfyUI stores text
    encoders by default (diffusion/precision.py)."""
    sa, sb = a.state_dict(), b.state_dict()
    if fp16_stored:
        sa = {k: v.half().float() if v.is_floating_point() else v for k, v in sa.items()}
    sa = {k: v for k, v in sa.items() if not k.endswith("position_ids")}
    sb = {k: v for k, v in sb.items() if not k.endswith("position_ids")}
    assert set(sa) == set(sb)
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def test_file_uses_the_original_ldm_key_layout(tiny_checkpoint):
    keys = set(read_state_dict(str(tiny_checkpoint[0])))
    assert "model.diffusion_model.input_blocks.0.0.weight" in keys
    assert "model.diffusion_model.middle_block.1.proj_in.weight" in keys
    assert "first_stage_model.encoder.mid.attn_1.q.weight" in keys
    assert "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight" in keys
    assert not any(k.startswith(("unet.", "vae.", "down_blocks")) for k in keys)


def test_layout_is_detected_from_the_weights(tiny_checkpoint):
    state = read_state_dict(str(tiny_checkpoint[0]))
    layout = detect_layout({k: tuple(v.shape) for k, v in state.items()})
    unet, vae, clip = tiny_checkpoint[1]
    assert layout.family == "sd1"
    def norm(v):
        return list(v) if isinstance(v, (list, tuple)) else v

    for key in ("block_out_channels", "layers_per_block", "down_block_types", "up_block_types",
                "cross_attention_dim", "in_channels", "out_channels"):
        assert norm(layout.unet[key]) == norm(unet.config[key]), key
    assert layout.vae["block_out_channels"] == list(vae.config.block_out_channels)
    assert layout.text_encoder["num_hidden_layers"] == clip.config.num_hidden_layers
    assert layout.text_encoder["vocab_size"] == 49408


def test_loaded_modules_have_exactly_the_written_weights(tiny_checkpoint, tiny_models):
    unet, vae, clip = tiny_checkpoint[1]
    model, text_encoder, autoencoder = tiny_models
    _same_weights(unet, model.unet)
    _same_weights(vae, autoencoder.autoencoder)
    _same_weights(clip, text_encoder.model, fp16_stored=True)


def test_full_size_sd15_layout_detection():
    """The real SD 1.5 architecture's shapes (no weights needed) give SD 1.5's config."""
    from accelerate import init_empty_weights
    from diffusers import UNet2DConditionModel

    from opencomfy.diffusion.detect import bundled_config, unet_config
    from opencomfy.diffusion.ldm_keys import unet_to_ldm

    with init_empty_weights():
        unet = UNet2DConditionModel.from_config(bundled_config("sd1_unet"))
    shapes = {k: tuple(v.shape) for k, v in unet_to_ldm(unet.state_dict(), dict(unet.config)).items()}
    config = unet_config(shapes, "sd1")
    assert config["block_out_channels"] == [320, 640, 1280, 1280]
    assert config["layers_per_block"] == 2
    assert config["down_block_types"] == bundled_config("sd1_unet")["down_block_types"]
    assert config["up_block_types"] == bundled_config("sd1_unet")["up_block_types"]
    assert config["cross_attention_dim"] == 768
    assert config["use_linear_projection"] is False


def test_pickle_checkpoints_are_refused_unless_opted_in(tmp_path, monkeypatch):
    path = tmp_path / "model.ckpt"
    torch.save({"state_dict": {"x": torch.zeros(1)}}, path)
    monkeypatch.delenv("OPENCOMFY_ALLOW_PICKLE", raising=False)
    with pytest.raises(PickleRefused):
        read_state_dict(str(path))
    monkeypatch.setenv("OPENCOMFY_ALLOW_PICKLE", "1")
    assert torch.equal(read_state_dict(str(path))["x"], torch.zeros(1))


def test_a_file_without_a_diffusion_model_is_refused(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "other.safetensors"
    save_file({"foo.weight": torch.zeros(2, 2)}, str(path))
    with pytest.raises(UnsupportedCheckpoint):
        load_checkpoint_file(str(path))


def test_sdxl_refiner_layout_is_refused_clearly():
    from opencomfy.diffusion.detect import detect_family

    shapes = {"model.diffusion_model.label_emb.0.0.weight": (1536, 2560),
              "conditioner.embedders.0.model.token_embedding.weight": (49408, 1280)}
    with pytest.raises(UnsupportedCheckpoint, match="refiner"):
        detect_family(shapes)
