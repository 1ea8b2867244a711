"""Token merging for Stable Diffusion (Bolya & Hoffman 2023, "Token Merging for Fast Stable
Diffusion"), as ComfyUI's TomePatchModel applies it.

In the full-resolution self-attentions, the tokens are split into destinations (one random
token of each 2x2 cell) and sources (all others). The ``r`` sources most similar (cosine) to
some destination are averaged into it, so attention runs over fewer queries; afterwards every
merged source gets its destination's output back. Keys and values keep every token, as in
ComfyUI (only the queries are merged).
"""

from __future__ import annotations

import math
from typing import Callable

import torch

STRIDE = 2


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def destination_mask(height: int, width: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """``[height * width]`` booleans: one random destination per whole 2x2 cell (row-major)."""
    cells_y, cells_x = height // STRIDE, width // STRIDE
    pick = torch.randint(STRIDE * STRIDE, (cells_y, cells_x), generator=generator)
    mask = torch.zeros(height, width, dtype=torch.bool)
    ys = torch.arange(cells_y)[:, None] * STRIDE + pick // STRIDE
    xs = torch.arange(cells_x)[None, :] * STRIDE + pick % STRIDE
    mask[ys, xs] = True
    return mask.reshape(-1)


def bipartite_merge(metric: torch.Tensor, height: int, width: int, r: int,
                    generator: torch.Generator | None = None
                    ) -> tuple[Callable[[torch.Tensor], torch.Tensor], Callable[[torch.Tensor], torch.Tensor]]:
    """(merge, unmerge) for tokens ``metric`` ``[B, height * width, C]``: merge averages the
    ``r`` most redundant sources into their destinations, unmerge copies outputs back."""
    batch, tokens, _ = metric.shape
    if r <= 0 or height == 1 or width == 1:
        return _identity, _identity
    device = metric.device
    is_dst = destination_mask(height, width, generator).to(device)
    dst_pos = torch.nonzero(is_dst).reshape(-1)
    src_pos = torch.nonzero(~is_dst).reshape(-1)
    with torch.no_grad():
        unit = metric / metric.norm(dim=-1, keepdim=True)
        scores = unit[:, src_pos] @ unit[:, dst_pos].transpose(1, 2)      # [B, sources, destinations]
        best, target = scores.max(dim=-1)
        order = best.argsort(dim=-1, descending=True)
    r = min(r, src_pos.numel())
    merged = order[:, :r]                                  # indices into the sources
    kept = order[:, r:]
    merged_target = target.gather(1, merged)               # indices into the destinations

    def take(x, idx):
        return x.gather(1, idx[..., None].expand(-1, -1, x.shape[-1]))

    def merge(x: torch.Tensor) -> torch.Tensor:
        src, dst = x[:, src_pos], x[:, dst_pos]
        channels = x.shape[-1]
        dst = dst.scatter_reduce(1, merged_target[..., None].expand(-1, -1, channels), take(src, merged),
                                 reduce="mean", include_self=True)
        return torch.cat([take(src, kept), dst], dim=1)

    def unmerge(x: torch.Tensor) -> torch.Tensor:
        n_kept = kept.shape[1]
        unmerged, dst = x[:, :n_kept], x[:, n_kept:]
        channels = x.shape[-1]
        out = torch.empty(batch, tokens, channels, device=x.device, dtype=x.dtype)
        out[:, dst_pos] = dst
        positions = src_pos.to(x.device)
        out.scatter_(1, positions[kept][..., None].expand(-1, -1, channels), unmerged)
        out.scatter_(1, positions[merged][..., None].expand(-1, -1, channels), take(dst, merged_target))
        return out

    return merge, unmerge


def merge_functions(x: torch.Tensor, ratio: float, original_shape, seed: int = 0):
    """(merge, unmerge) for a self-attention's tokens ``x``: merging at the latent's full
    resolution only (``original_shape`` is the UNet input's ``[B, C, H, W]``)."""
    height, width = int(original_shape[-2]), int(original_shape[-1])
    downsample = int(math.ceil(math.sqrt((height * width) // x.shape[1])))
    if downsample > 1:
        return _identity, _identity
    generator = torch.Generator().manual_seed(seed)
    return bipartite_merge(x, height, width, int(x.shape[1] * ratio), generator)


def tome_patch(model, ratio: float):
    """A clone of ``model`` whose full-resolution self-attention queries are token-merged."""
    state: dict[str, Callable] = {"unmerge": _identity}

    def merge_queries(q, k, v, extra_options):
        # Seeded by the step and the block: the same graph gives the same image.
        sigma = float(extra_options["sigmas"].reshape(-1)[0]) if "sigmas" in extra_options else 0.0
        seed = hash((round(sigma, 6), extra_options.get("transformer_index", 0))) & 0x7FFFFFFF
        merge, state["unmerge"] = merge_functions(q, ratio, extra_options["original_shape"], seed)
        return merge(q), k, v

    def unmerge_output(out, extra_options):
        unmerge, state["unmerge"] = state["unmerge"], _identity
        return unmerge(out)

    m = model.clone()
    m.set_model_attn1_patch(merge_queries)
    m.set_model_attn1_output_patch(unmerge_output)
    return m
