"""Module-level helpers ComfyUI keeps in ``comfy_extras.nodes_lt`` (LTX-Video), which video
packs import beside the node classes: pure functions over LATENT and CONDITIONING values."""

from __future__ import annotations

import torch


def get_noise_mask(latent: dict) -> torch.Tensor:
    """The latent's noise mask (a copy), or a mask of ones: one value per frame,
    shaped ``(batch, 1, frames, 1, 1)``, for a 5-D video latent without one."""
    mask = latent.get("noise_mask")
    if mask is not None:
        return mask.clone()
    samples = latent["samples"]
    batch, frames = samples.shape[0], samples.shape[2]
    return torch.ones((batch, 1, frames, 1, 1), dtype=torch.float32, device=samples.device)


def conditioning_get_any_value(conditioning: list, key: str, default=None):
    """The first value of ``key`` among the conditioning entries' options, else ``default``."""
    for _tensor, options in conditioning:
        if key in options:
            return options[key]
    return default


def get_keyframe_idxs(conditioning: list):
    """The guide keyframes' indices stored in the conditioning and how many distinct
    keyframes they name (``(None, 0)`` without any)."""
    idxs = conditioning_get_any_value(conditioning, "keyframe_idxs")
    if idxs is None:
        return None, 0
    return idxs, int(torch.unique(idxs[:, 0]).shape[0])


HELPERS = {
    "get_noise_mask": get_noise_mask,
    "conditioning_get_any_value": conditioning_get_any_value,
    "get_keyframe_idxs": get_keyframe_idxs,
}
