"""Random-weight SD 1.x and SDXL checkpoints in the original single-file layout, for tests and
benchmarks.

No weights can be downloaded here, so tests build their own: ``tiny`` (a 32-channel UNet and
VAE, a 2-layer CLIP with CLIP's full vocabulary, about 7 MB) or ``sd15`` (the real SD 1.5
architecture, about 4 GB in fp32). The modules are also returned so that a test can hand the
very same weights to diffusers' pipeline.
"""

from __future__ import annotations

import copy
from typing import cast

import torch

from opencomfy.diffusion.detect import bundled_config
from opencomfy.diffusion.ldm_keys import (SD2_CLIP_PREFIX, SDXL_CLIP_L_PREFIX, open_clip_to_ldm,
                                         sd1_clip_to_ldm, unet_to_ldm, vae_to_ldm)

TINY_UNET = {
    "block_out_channels": [32, 64], "layers_per_block": 1, "cross_attention_dim": 32,
    "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"], "sample_size": 8,
}
# Four levels, as SD's VAE, so that latents are 1/8 of the image size.
TINY_VAE = {
    "block_out_channels": [32, 32, 32, 32], "layers_per_block": 1, "sample_size": 64,
}
TINY_CLIP = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
             "num_attention_heads": 1, "projection_dim": 32}


def sd1_configs(size: str = "tiny") -> tuple[dict, dict, dict]:
    """(unet, vae, text encoder) configs of a random model of the given size."""
    unet = copy.deepcopy(bundled_config("sd1_unet"))
    vae = copy.deepcopy(bundled_config("sd1_vae"))
    clip = copy.deepcopy(bundled_config("sd1_text_encoder"))
    if size == "tiny":
        unet.update(TINY_UNET)
        vae.update(TINY_VAE)
        clip.update(TINY_CLIP)
    elif size != "sd15":
        raise ValueError(f"unknown size {size!r}")
    return unet, vae, clip


def _perturb_norms(module: torch.nn.Module, generator: torch.Generator) -> None:
    """Random init leaves norm weights at 1 and biases at 0; perturb them so conversions that
    swap a norm's weight and bias would be caught."""
    for name, p in module.named_parameters():
        if "norm" in name:
            p.data += 0.1 * torch.randn(p.shape, generator=generator)


def _random_unet_vae(unet_config: dict, vae_config: dict):
    """A random-init diffusers (UNet, VAE) pair from their configs, in that order (seeding)."""
    from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL
    from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel

    # from_config is typed model-or-(model, unused kwargs); the tuple comes only with
    # return_unused_kwargs=True.
    unet = cast(UNet2DConditionModel, UNet2DConditionModel.from_config(unet_config))
    vae = cast(AutoencoderKL, AutoencoderKL.from_config(vae_config))
    return unet, vae


def build_sd1_modules(size: str = "tiny", *, seed: int = 0):
    """Random (unet, vae, text_encoder) diffusers/transformers modules."""
    from transformers import CLIPTextConfig, CLIPTextModel

    unet_config, vae_config, clip_config = sd1_configs(size)
    torch.manual_seed(seed)
    unet, vae = _random_unet_vae(unet_config, vae_config)
    clip = CLIPTextModel(CLIPTextConfig(**clip_config))
    generator = torch.Generator().manual_seed(seed + 1)
    for m in (unet, vae, clip):
        _perturb_norms(m, generator)
        m.eval().requires_grad_(False)
    return unet, vae, clip


def ldm_state_dict(unet, vae, clip) -> dict[str, torch.Tensor]:
    """One single-file state dict in the LDM layout of real SD 1.x checkpoints."""
    out = {}
    out.update(unet_to_ldm(unet.state_dict(), dict(unet.config)))
    out.update(vae_to_ldm(vae.state_dict(), dict(vae.config)))
    out.update(sd1_clip_to_ldm(clip.state_dict()))
    return {k: v.contiguous() for k, v in out.items()}


def write_sd1_checkpoint(path, size: str = "tiny", *, seed: int = 0, dtype=torch.float32):
    """Write a random SD 1.x checkpoint to ``path`` (safetensors); return the modules."""
    from safetensors.torch import save_file

    unet, vae, clip = build_sd1_modules(size, seed=seed)
    state = {k: v.to(dtype) for k, v in ldm_state_dict(unet, vae, clip).items()}
    save_file(state, str(path))
    return unet, vae, clip


TINY_SDXL_UNET = {
    "block_out_channels": [32, 64], "layers_per_block": 1, "cross_attention_dim": 64,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D"], "sample_size": 8,
    "transformer_layers_per_block": [1, 2], "attention_head_dim": [1, 1],
    "addition_time_embed_dim": 8, "projection_class_embeddings_input_dim": 6 * 8 + 32,
}
TINY_CLIP_G = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
               "num_attention_heads": 1, "projection_dim": 32}


def build_sdxl_modules(*, seed: int = 0):
    """Random tiny SDXL (unet, vae, clip_l, clip_g) modules."""
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    unet_config = copy.deepcopy(bundled_config("sdxl_unet"))
    unet_config.update(TINY_SDXL_UNET)
    vae_config = copy.deepcopy(bundled_config("sdxl_vae"))
    vae_config.update(TINY_VAE)
    l_config = copy.deepcopy(bundled_config("sdxl_text_encoder"))
    l_config.update(TINY_CLIP)
    g_config = copy.deepcopy(bundled_config("sdxl_text_encoder_2"))
    g_config.update(TINY_CLIP_G)
    torch.manual_seed(seed)
    unet, vae = _random_unet_vae(unet_config, vae_config)
    clip_l = CLIPTextModel(CLIPTextConfig(**l_config))
    clip_g = CLIPTextModelWithProjection(CLIPTextConfig(**g_config))
    generator = torch.Generator().manual_seed(seed + 1)
    for m in (unet, vae, clip_l, clip_g):
        _perturb_norms(m, generator)
        m.eval().requires_grad_(False)
    return unet, vae, clip_l, clip_g


def write_sdxl_checkpoint(path, *, seed: int = 0):
    """Write a tiny random SDXL checkpoint (LDM layout, safetensors); return the modules."""
    from safetensors.torch import save_file

    unet, vae, clip_l, clip_g = build_sdxl_modules(seed=seed)
    state = {}
    state.update(unet_to_ldm(unet.state_dict(), dict(unet.config)))
    state.update(vae_to_ldm(vae.state_dict(), dict(vae.config)))
    state.update(sd1_clip_to_ldm(clip_l.state_dict(), SDXL_CLIP_L_PREFIX))
    state.update(open_clip_to_ldm(clip_g.state_dict()))
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return unet, vae, clip_l, clip_g


TINY_SD2_UNET = {
    "block_out_channels": [64, 64], "layers_per_block": 1, "cross_attention_dim": 32,
    "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"], "sample_size": 8,
    "attention_head_dim": [1, 1],
}


def write_sd2_checkpoint(path, *, seed: int = 0, v_prediction: bool = False):
    """Write a tiny random SD 2.x checkpoint (OpenCLIP-H layout); a ``v_pred`` marker key when
    asked. Returns (unet, vae, clip_h)."""
    from safetensors.torch import save_file
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    unet_config = copy.deepcopy(bundled_config("sd2_unet"))
    unet_config.update(TINY_SD2_UNET)
    vae_config = copy.deepcopy(bundled_config("sd2_vae"))
    vae_config.update(TINY_VAE)
    h_config = copy.deepcopy(bundled_config("sd2_text_encoder"))
    h_config.update(TINY_CLIP_G)
    torch.manual_seed(seed)
    unet, vae = _random_unet_vae(unet_config, vae_config)
    clip_h = CLIPTextModelWithProjection(CLIPTextConfig(**h_config))
    generator = torch.Generator().manual_seed(seed + 1)
    for m in (unet, vae, clip_h):
        _perturb_norms(m, generator)
        m.eval().requires_grad_(False)
    state = {}
    state.update(unet_to_ldm(unet.state_dict(), dict(unet.config)))
    state.update(vae_to_ldm(vae.state_dict(), dict(vae.config)))
    state.update(open_clip_to_ldm(clip_h.state_dict(), SD2_CLIP_PREFIX))
    if v_prediction:
        state["v_pred"] = torch.tensor([])
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return unet, vae, clip_h
