"""Inpainting UNets (9 input channels): InpaintModelConditioning and the extra model input."""

from __future__ import annotations

import pytest
import torch

from opencomfy.nodes.diffusion_sampling import common_ksampler
from opencomfy.nodes.diffusion_conditioning import CLIPTextEncode, InpaintModelConditioning
from opencomfy.nodes.diffusion_vae import VAEEncode, VAEEncodeForInpaint


@pytest.fixture(scope="module")
def inpaint_models(tmp_path_factory):
    from diffusers import UNet2DConditionModel
    from safetensors.torch import save_file

    from opencomfy.diffusion.loading import load_checkpoint_file
    from opencomfy.diffusion.random_checkpoint import build_sd1_modules, ldm_state_dict, sd1_configs

    _, vae, clip = build_sd1_modules("tiny", seed=4)
    config = sd1_configs("tiny")[0]
    config["in_channels"] = 9
    torch.manual_seed(4)
    unet = UNet2DConditionModel.from_config(config).eval()
    path = tmp_path_factory.mktemp("inpaint") / "tiny_inpaint.safetensors"
    save_file(ldm_state_dict(unet, vae, clip), str(path))
    return load_checkpoint_file(str(path))


def _record_inputs(unet):
    seen = []
    handle = unet.register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach().clone()))
    return seen, handle


def test_inpaint_model_conditioning_feeds_mask_and_masked_latent(inpaint_models):
    model, clip, vae = inpaint_models
    assert model.is_inpaint and model.latent_channels == 4
    pixels = torch.rand(1, 64, 64, 3)
    mask = torch.zeros(1, 64, 64)
    mask[:, 16:48, 16:48] = 1
    pos = CLIPTextEncode().encode(clip, "a cat")[0]
    neg = CLIPTextEncode().encode(clip, "")[0]
    pos2, neg2, latent = InpaintModelConditioning().encode(pos, neg, pixels, vae, mask, True)
    assert torch.allclose(latent["samples"], VAEEncode().encode(vae, pixels)[0]["samples"])
    masked = pixels.clone()
    masked[:, 16:48, 16:48] = 0.5
    expected_concat = VAEEncode().encode(vae, masked)[0]["samples"]
    assert torch.allclose(pos2[0][1]["concat_latent_image"], expected_concat, atol=1e-5)
    seen, handle = _record_inputs(model.unet)
    try:
        out = common_ksampler(model, 1, 3, 5.0, "euler", "normal", pos2, neg2, latent, denoise=0.9)
    finally:
        handle.remove()
    assert out["samples"].shape == (1, 4, 8, 8) and torch.isfinite(out["samples"]).all()
    first = seen[0]
    assert first.shape[1] == 9
    expected_mask = torch.zeros(8, 8)
    expected_mask[2:6, 2:6] = 1
    assert torch.equal(first[0, 4], expected_mask)
    assert torch.allclose(first[0, 5:], expected_concat[0] * model.scale_factor, atol=1e-5)
    # unmasked latents stay as they were (noise_mask)
    keep = torch.ones(1, 4, 8, 8, dtype=torch.bool)
    keep[:, :, 2:6, 2:6] = False
    assert torch.allclose(out["samples"][keep], latent["samples"][keep], atol=1e-4)


def test_inpaint_model_with_vae_encode_for_inpaint_uses_the_latent_itself(inpaint_models):
    model, clip, vae = inpaint_models
    pixels = torch.rand(1, 32, 32, 3)
    mask = torch.zeros(1, 32, 32)
    mask[:, 8:24, 8:24] = 1
    latent = VAEEncodeForInpaint().encode(vae, pixels, mask, grow_mask_by=0)[0]
    pos = CLIPTextEncode().encode(clip, "a cat")[0]
    seen, handle = _record_inputs(model.unet)
    try:
        common_ksampler(model, 1, 2, 5.0, "euler", "normal", pos, pos, latent)
    finally:
        handle.remove()
    assert torch.allclose(seen[0][0, 5:], latent["samples"][0] * model.scale_factor, atol=1e-5)
    assert seen[0][0, 4].sum() == 4            # the 16x16 pixel mask is 2x2 latent pixels
