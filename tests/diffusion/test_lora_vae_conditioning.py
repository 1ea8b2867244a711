"""LoRA patches, VAE nodes (plain, inpainting, tiled) and the conditioning edit nodes."""

from __future__ import annotations

import pytest
import torch

from opencomfy.compat import folder_paths
from opencomfy.diffusion.lora import LoraFile
from opencomfy.nodes.diffusion_sampling import common_ksampler
from opencomfy.nodes import diffusion_conditioning as cn
from opencomfy.nodes.diffusion_loaders import LoraLoader, LoraLoaderModelOnly
from opencomfy.nodes.diffusion_vae import (VAEDecode, VAEDecodeTiled, VAEEncode, VAEEncodeForInpaint,
                                           VAEEncodeTiled)

LDM_TO_Q = "input_blocks.1.1.transformer_blocks.0.attn2.to_q"     # a module of the tiny UNet


def _kohya_lora(rank=2, seed=0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    base = "lora_unet_" + LDM_TO_Q.replace(".", "_")
    te = "lora_te_text_model_encoder_layers_0_self_attn_q_proj"
    return {
        base + ".lora_down.weight": torch.randn(rank, 32, generator=g),
        base + ".lora_up.weight": torch.randn(32, rank, generator=g),
        base + ".alpha": torch.tensor(1.0),
        te + ".lora_down.weight": torch.randn(rank, 32, generator=g),
        te + ".lora_up.weight": torch.randn(32, rank, generator=g),
    }


@pytest.fixture
def lora_folder(tmp_path, monkeypatch, tiny_models):
    from safetensors.torch import save_file

    folder = tmp_path / "loras"
    folder.mkdir()
    save_file(_kohya_lora(), str(folder / "style.safetensors"))
    monkeypatch.setitem(folder_paths.folder_names_and_paths, "loras",
                        ([str(folder)], folder_paths.supported_pt_extensions))
    folder_paths.filename_list_cache.pop("loras", None)
    yield folder
    folder_paths.filename_list_cache.pop("loras", None)


def _sample(model, clip, seed=1):
    pos = cn.CLIPTextEncode().encode(clip, "a cat")[0]
    neg = cn.CLIPTextEncode().encode(clip, "")[0]
    return common_ksampler(model, seed, 3, 5.0, "euler", "normal", pos, neg,
                           {"samples": torch.zeros(1, 4, 4, 4)})["samples"]


def test_lora_keys_are_matched_by_ldm_and_text_encoder_names(tiny_models):
    model, clip, _ = tiny_models
    lora = LoraFile(_kohya_lora())
    unet_patch = lora.for_unet(model.unet)
    assert list(unet_patch.deltas) == ["down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_q.weight"]
    [te_patch] = lora.for_text_encoder(clip)
    assert len(te_patch) == 1 and next(iter(te_patch.deltas)).endswith("layers.0.self_attn.q_proj.weight")


def test_lora_patch_adds_scaled_product_and_restores(tiny_models):
    model = tiny_models[0]
    weights = _kohya_lora()
    patch = LoraFile(weights).for_unet(model.unet)
    [name] = patch.deltas
    param = dict(model.unet.named_parameters())[name]
    before = param.detach().clone()
    restore = patch.apply(0.7)
    base = "lora_unet_" + LDM_TO_Q.replace(".", "_")
    expected = before + 0.7 * (1.0 / 2) * weights[base + ".lora_up.weight"] @ weights[base + ".lora_down.weight"]
    assert torch.allclose(param, expected, atol=1e-6)
    restore()
    assert torch.equal(param, before)


def test_lora_strength_zero_equals_no_lora(tiny_models, lora_folder):
    model, clip, _ = tiny_models
    plain = _sample(model, clip)
    m0, c0 = LoraLoader().load_lora(model, clip, "style.safetensors", 0.0, 0.0)
    assert torch.equal(_sample(m0, c0), plain)
    m1, c1 = LoraLoader().load_lora(model, clip, "style.safetensors", 1.0, 1.0)
    with_lora = _sample(m1, c1)
    assert not torch.allclose(with_lora, plain, atol=1e-3)
    assert torch.equal(_sample(model, clip), plain)        # the base model is left untouched
    assert model.patches == [] and clip.patches == []
    (only_model,) = LoraLoaderModelOnly().load_lora_model_only(model, "style.safetensors", 1.0)
    assert len(only_model.patches) == 1


def test_vae_encode_decode_shapes_and_crop(tiny_models):
    vae = tiny_models[2]
    pixels = torch.rand(2, 36, 44, 3)
    latent = VAEEncode().encode(vae, pixels)[0]["samples"]
    assert latent.shape == (2, 4, 4, 5)                  # cropped to multiples of 8
    image = VAEDecode().decode(vae, {"samples": latent})[0]
    assert image.shape == (2, 32, 40, 3) and image.min() >= 0 and image.max() <= 1
    expected = vae.autoencoder.encode(pixels[:, 2:34, 2:42].permute(0, 3, 1, 2) * 2 - 1).latent_dist.mode()
    assert torch.allclose(latent, expected, atol=1e-5)


def test_tiled_vae_equals_plain_when_one_tile(tiny_models):
    vae = tiny_models[2]
    latent = torch.randn(1, 4, 8, 8)
    plain = VAEDecode().decode(vae, {"samples": latent})[0]
    tiled = VAEDecodeTiled().decode(vae, {"samples": latent}, tile_size=64, overlap=16)[0]
    assert torch.allclose(plain, tiled, atol=1e-5)
    pixels = torch.rand(1, 64, 64, 3)
    assert torch.allclose(VAEEncodeTiled().encode(vae, pixels, 64, 16)[0]["samples"],
                          VAEEncode().encode(vae, pixels)[0]["samples"], atol=1e-5)


def test_tiled_vae_with_several_tiles_has_the_right_size(tiny_models):
    vae = tiny_models[2]
    latent = torch.randn(1, 4, 16, 24)
    tiled = VAEDecodeTiled().decode(vae, {"samples": latent}, tile_size=64, overlap=32)[0]
    assert tiled.shape == (1, 128, 192, 3) and torch.isfinite(tiled).all()
    encoded = VAEEncodeTiled().encode(vae, torch.rand(1, 128, 192, 3), 64, 32)[0]["samples"]
    assert encoded.shape == (1, 4, 16, 24)


def test_vae_encode_for_inpaint_greys_the_mask_and_grows_it(tiny_models):
    vae = tiny_models[2]
    pixels = torch.rand(1, 32, 32, 3)
    mask = torch.zeros(1, 32, 32)
    mask[:, 8:16, 8:16] = 1
    out = VAEEncodeForInpaint().encode(vae, pixels, mask, grow_mask_by=6)[0]
    grey = pixels.clone()
    grey[:, 8:16, 8:16] = 0.5
    assert torch.allclose(out["samples"], VAEEncode().encode(vae, grey)[0]["samples"], atol=1e-5)
    noise_mask = out["noise_mask"]
    assert noise_mask.shape == (1, 1, 32, 32)
    assert noise_mask[0, 0, 8:16, 8:16].eq(1).all() and noise_mask.sum() > 64
    assert noise_mask[0, 0, 0, 0] == 0


def test_inpaint_run_changes_only_the_masked_latents(tiny_models):
    model, clip, vae = tiny_models
    pixels = torch.rand(1, 64, 64, 3)
    mask = torch.zeros(1, 64, 64)
    mask[:, 16:48, 16:48] = 1
    latent = VAEEncodeForInpaint().encode(vae, pixels, mask, grow_mask_by=0)[0]
    pos = cn.CLIPTextEncode().encode(clip, "a cat")[0]
    out = common_ksampler(model, 5, 4, 5.0, "euler", "normal", pos, pos, latent)["samples"]
    keep = torch.ones(1, 4, 8, 8, dtype=torch.bool)
    keep[:, :, 2:6, 2:6] = False
    assert torch.allclose(out[keep], latent["samples"][keep], atol=1e-4)
    assert (out - latent["samples"])[~keep].abs().mean() > 0.05


def _cond(value=1.0, tokens=77):
    return [[torch.full((1, tokens, 32), value), {"pooled_output": torch.full((1, 32), value)}]]


def test_conditioning_nodes():
    a, b = _cond(1.0), _cond(3.0)
    assert len(cn.ConditioningCombine().combine(a, b)[0]) == 2
    avg = cn.ConditioningAverage().addWeighted(a, b, 0.25)[0]
    assert torch.allclose(avg[0][0], torch.full((1, 77, 32), 2.5))
    assert torch.allclose(avg[0][1]["pooled_output"], torch.full((1, 32), 2.5))
    assert cn.ConditioningConcat().concat(a, b)[0][0][0].shape == (1, 154, 32)
    zero = cn.ConditioningZeroOut().zero_out(a)[0]
    assert zero[0][0].abs().sum() == 0 and zero[0][1]["pooled_output"].abs().sum() == 0
    assert a[0][0].sum() > 0                             # inputs are not changed
    area = cn.ConditioningSetArea().append(a, 64, 128, 8, 16, 0.5)[0][0][1]
    assert area["area"] == (16, 8, 2, 1) and area["strength"] == 0.5
    pct = cn.ConditioningSetAreaPercentage().append(a, 0.5, 0.25, 0.1, 0.2, 1.0)[0][0][1]
    assert pct["area"] == ("percentage", 0.25, 0.5, 0.2, 0.1)
    rng = cn.ConditioningSetTimestepRange().set_range(a, 0.2, 0.8)[0][0][1]
    assert (rng["start_percent"], rng["end_percent"]) == (0.2, 0.8)
    masked = cn.ConditioningSetMask().append(a, torch.ones(8, 8), "mask bounds", 0.7)[0][0][1]
    assert masked["mask"].shape == (1, 8, 8) and masked["set_area_to_bounds"] and masked["mask_strength"] == 0.7
    assert "area" not in a[0][1]


def test_area_and_timestep_range_conditioning_sample(tiny_models):
    model, clip, _ = tiny_models
    pos = cn.CLIPTextEncode().encode(clip, "a cat")[0]
    neg = cn.CLIPTextEncode().encode(clip, "")[0]
    other = cn.CLIPTextEncode().encode(clip, "a dog " * 30)[0]          # different token length
    latent = {"samples": torch.zeros(1, 4, 8, 8)}
    base = common_ksampler(model, 2, 3, 5.0, "euler", "normal", pos, neg, latent)["samples"]
    area = cn.ConditioningSetArea().append(other, 32, 32, 0, 0, 1.0)[0]
    combined = cn.ConditioningCombine().combine(pos, area)[0]
    with_area = common_ksampler(model, 2, 3, 5.0, "euler", "normal", combined, neg, latent)["samples"]
    assert torch.isfinite(with_area).all() and not torch.allclose(with_area, base, atol=1e-3)
    # a cond active for no step at all changes nothing
    never = cn.ConditioningSetTimestepRange().set_range(other, 1.0, 1.0)[0]
    same = common_ksampler(model, 2, 3, 5.0, "euler", "normal", pos + never, neg, latent)["samples"]
    assert torch.allclose(same, base, atol=1e-5)


def test_area_weight_fades_in_from_inner_edges():
    from opencomfy.diffusion.conditioning import _area_and_weight

    area, weight = _area_and_weight({"area": (16, 16, 0, 8)}, 32, 32)
    assert area == (16, 16, 0, 8)
    row = weight[0, 0, 0]
    assert torch.allclose(row[:8], torch.arange(1, 9) / 8)        # left edge is inside: fades in
    assert torch.allclose(row[8:], torch.arange(8, 0, -1) / 8)   # right edge is inside too
    column = weight[0, 0, :, 8]
    assert torch.allclose(column[:8], torch.ones(8))                # top edge is the image's edge
    assert column[-1] == pytest.approx(1 / 8)                       # bottom edge inside
