"""ComfyUI's ``comfy.diffusers_convert``: diffusers state dicts renamed to the original
Stable Diffusion checkpoint layout (UNet, VAE, text encoders), for packs that load or save
diffusers-format weights.

Built on :mod:`opencomfy.diffusion.ldm_keys`; the structure each converter needs (blocks per
level, which up-blocks have attention, how many VAE levels) is read from the keys themselves.
Returned keys carry no checkpoint prefix (``input_blocks.1.0...``, ``encoder.down.0...``).
"""

from __future__ import annotations

import re

import torch

from opencomfy.diffusion import ldm_keys

# Older diffusers named the VAE's attention projections differently.
_OLD_VAE_ATTENTION = ((".query.", ".to_q."), (".key.", ".to_k."), (".value.", ".to_v."),
                      (".proj_attn.", ".to_out.0."))


def _indices(keys, pattern: str) -> set[int]:
    return {int(m[1]) for k in keys if (m := re.match(pattern, k))}


def convert_unet_state_dict(unet_state_dict: dict) -> dict:
    """A diffusers ``UNet2DConditionModel`` state dict -> LDM UNet keys."""
    keys = list(unet_state_dict)
    resnets = _indices(keys, r"down_blocks\.\d+\.resnets\.(\d+)\.")
    layers_per_block = max(resnets) + 1 if resnets else 2
    with_attention = _indices(keys, r"up_blocks\.(\d+)\.attentions\.")
    return {ldm_keys.unet_key_to_ldm(k, layers_per_block=layers_per_block,
                                     up_blocks_with_attention=with_attention): v
            for k, v in unet_state_dict.items()}


def reshape_weight_for_sd(w: torch.Tensor, conv3d: bool = False) -> torch.Tensor:
    """A linear weight as the 1x1 (x1) convolution the original VAE attention uses."""
    return w.reshape(*w.shape, 1, 1, 1) if conv3d else w.reshape(*w.shape, 1, 1)


def convert_vae_state_dict(vae_state_dict: dict) -> dict:
    """A diffusers ``AutoencoderKL`` state dict -> LDM VAE keys (attention as 1x1 convolutions)."""
    renamed = {}
    for key, value in vae_state_dict.items():
        for old, new in _OLD_VAE_ATTENTION:
            if old in key and ".mid_block.attentions." in key:
                key = key.replace(old, new)
        renamed[key] = value
    levels = len(_indices(renamed, r"encoder\.down_blocks\.(\d+)\.")) or 4
    out = {}
    for key, value in renamed.items():
        ldm = ldm_keys.vae_key_to_ldm(key, levels=levels)
        if ".mid.attn_1." in ldm and ldm.endswith(".weight") and ldm.split(".")[-2] in ("q", "k", "v", "proj_out") \
                and value.ndim == 2:
            value = reshape_weight_for_sd(value)
        out[ldm] = value
    return out


def convert_text_enc_state_dict(text_enc_dict: dict) -> dict:
    """SD 1.x's text encoder is the transformers CLIP layout already."""
    return text_enc_dict


def convert_text_enc_state_dict_v20(text_enc_dict: dict, prefix: str = "") -> dict:
    """An open_clip text encoder (SD 2.x, SDXL's second) from the transformers layout: fused
    q/k/v projections, ``resblocks``, ``ln_final``. Only keys under ``prefix`` are converted."""
    mine = {k[len(prefix):]: v for k, v in text_enc_dict.items() if k.startswith(prefix)}
    body = {k[len("text_model."):] if k.startswith("text_model.") else k: v for k, v in mine.items()}
    projection = body.get("text_projection.weight")
    if projection is None:
        # SD 2.x has no projection: give the converter one to drop again.
        width = body["final_layer_norm.weight"].shape[0]
        body = {**body, "text_projection.weight": torch.empty(width, width)}
    out = ldm_keys.open_clip_to_ldm(body, prefix=prefix)
    if projection is None:
        out.pop(prefix + "text_projection")
    return out
