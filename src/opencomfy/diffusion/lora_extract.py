"""Extracting a LoRA from a model difference (ComfyUI's LoraSave node).

The input is a MODEL (or CLIP) whose weights *are* a difference, normally the output of
ModelMergeSubtract(tuned, base). Every 2-D or convolution weight becomes a low-rank pair by a
truncated SVD (``up = U * S``, ``down = Vh``, both clamped to the 99th percentile of their
values, as ComfyUI does, so a few outliers do not dominate a half-precision file); with
``full_diff`` the difference is stored whole (``.diff``). 1-D weights (norms) and, with
``bias_diff``, biases are stored whole (``.diff`` / ``.diff_b``). Keys are ComfyUI's:
``diffusion_model.<LDM path>`` and ``text_encoders.clip_l.transformer.<path>``.
"""

from __future__ import annotations

import logging

import torch

log = logging.getLogger(__name__)

CLAMP_QUANTILE = 0.99
LORA_TYPES = ("standard", "full_diff")
# torch.quantile refuses inputs above this many elements; larger ones are subsampled.
_QUANTILE_LIMIT = 16_000_000


def _quantile(values: torch.Tensor, q: float) -> torch.Tensor:
    if values.numel() > _QUANTILE_LIMIT:
        step = values.numel() // _QUANTILE_LIMIT + 1
        values = values[::step]
    return torch.quantile(values, q)


def extract_lora(diff: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(up, down) of rank at most ``rank`` approximating ``diff`` (linear or conv weight)."""
    conv = diff.ndim == 4
    kernel = tuple(diff.shape[2:4]) if conv else None
    out_dim, in_dim = diff.shape[0], diff.shape[1]
    rank = min(rank, in_dim, out_dim)
    matrix = diff.flatten(start_dim=1) if conv else diff
    u, s, vh = torch.linalg.svd(matrix.float(), full_matrices=False)
    up = u[:, :rank] @ torch.diag(s[:rank])
    down = vh[:rank, :]
    high = _quantile(torch.cat([up.flatten(), down.flatten()]), CLAMP_QUANTILE)
    up, down = up.clamp(-high, high), down.clamp(-high, high)
    if conv:
        assert kernel is not None
        up = up.reshape(out_dim, rank, 1, 1)
        down = down.reshape(rank, in_dim, kernel[0], kernel[1])
    return up, down


def lora_from_weights(weights: dict[str, torch.Tensor], *, prefix_model: str, prefix_lora: str,
                      rank: int, lora_type: str, bias_diff: bool, out: dict | None = None) -> dict:
    """LoRA tensors (half precision) for the difference weights ``{key: tensor}`` whose keys
    start with ``prefix_model``."""
    if lora_type not in LORA_TYPES:
        raise ValueError(f"unknown lora_type {lora_type!r} (expected one of {', '.join(LORA_TYPES)})")
    out = {} if out is None else out
    for key, weight in weights.items():
        if not key.startswith(prefix_model):
            continue
        name = prefix_lora + key[len(prefix_model):]
        if key.endswith(".weight"):
            base = name[:-len(".weight")]
            if lora_type == "full_diff" or weight.ndim < 2:
                if lora_type == "full_diff" or bias_diff:
                    out[base + ".diff"] = weight.contiguous().half().cpu()
                continue
            try:
                up, down = extract_lora(weight, rank)
            except (RuntimeError, ValueError) as exc:   # an SVD that does not converge
                log.warning("no LoRA weights for %s (is the difference zero?): %s", key, exc)
                continue
            out[base + ".lora_up.weight"] = up.contiguous().half().cpu()
            out[base + ".lora_down.weight"] = down.contiguous().half().cpu()
        elif bias_diff and key.endswith(".bias"):
            out[name[:-len(".bias")] + ".diff_b"] = weight.contiguous().half().cpu()
    return out


def extract_from(*, model=None, clip=None, rank: int, lora_type: str, bias_diff: bool) -> dict:
    """The LoRA state dict of a MODEL difference and/or a CLIP difference."""
    from opencomfy.diffusion.merge import clip_weights, model_weights
    from opencomfy.diffusion.weight_patches import COMFY_PREFIX

    out: dict = {}
    if model is not None:
        lora_from_weights(model_weights(model, copy=True), prefix_model=COMFY_PREFIX,
                          prefix_lora=COMFY_PREFIX, rank=rank, lora_type=lora_type,
                          bias_diff=bias_diff, out=out)
    if clip is not None:
        lora_from_weights(clip_weights(clip, copy=True), prefix_model="", prefix_lora="text_encoders.",
                          rank=rank, lora_type=lora_type, bias_diff=bias_diff, out=out)
    return out
