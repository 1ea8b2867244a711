"""``comfy.utils.tiled_scale_multidim``: a function over overlapping tiles of a tensor with any
number of spatial dimensions (images, video latents, audio), blended back together.

The tile grid and the feathered blend follow ComfyUI's: tiles start every ``tile - overlap``
along each dimension, the last one pulled back to end at the edge; each result is weighted
by a mask that ramps up over the (scaled) overlap from every side, and the weighted sums are
normalised. ``comfy.utils.tiled_scale`` (2-D) is the upscale-model tiling of
:mod:`opencomfy.diffusion.upscale`; this is its N-dimensional form.
"""

from __future__ import annotations

import itertools
from typing import Any, Callable, cast

import torch


def _per_dim(value: Any, dims: int) -> tuple:
    if isinstance(value, (tuple, list)):
        if len(value) != dims:
            raise ValueError(f"expected {dims} values, one per tiled dimension, got {len(value)}")
        return tuple(value)
    return (value,) * dims


def _scaled(amount: Any, size: float, downscale: bool) -> float:
    if callable(amount):
        return float(cast(float, amount(size)))
    return size / amount if downscale else size * amount


def _starts(size: int, tile: int, overlap: int) -> list[int]:
    if size <= tile:
        return [0]
    step = max(1, tile - overlap)
    return sorted({max(0, min(size - overlap, p)) for p in range(0, size - overlap, step)})


def tiled_scale_multidim(samples: torch.Tensor, function: Callable[[torch.Tensor], torch.Tensor],
                         tile=(64, 64), overlap: Any = 8, upscale_amount: Any = 4, out_channels: int = 3,
                         output_device="cpu", downscale: bool = False, index_formulas=None,
                         pbar=None) -> torch.Tensor:
    """``function`` over tiles of ``samples`` ``[B, C, *spatial]``; ``tile`` has one size per
    spatial dimension. The output has ``out_channels`` channels and each spatial size times
    ``upscale_amount`` (divided, with ``downscale``); an amount may be a callable of the size.
    ``index_formulas`` (same forms) maps tile positions when they scale differently from
    sizes. ``pbar.update(1)`` is called once per tile.
    """
    dims = len(tile)
    spatial = tuple(samples.shape[2:])
    if len(spatial) != dims:
        raise ValueError(f"samples have {len(spatial)} spatial dimensions, tile has {dims}")
    amounts = _per_dim(upscale_amount, dims)
    overlaps = _per_dim(overlap, dims)
    positions = _per_dim(index_formulas, dims) if index_formulas is not None else amounts
    out_sizes = [round(_scaled(amounts[d], spatial[d], downscale)) for d in range(dims)]
    output = torch.empty((samples.shape[0], out_channels, *out_sizes), device=output_device)

    for b in range(samples.shape[0]):
        item = samples[b:b + 1]
        if all(spatial[d] <= tile[d] for d in range(dims)):
            output[b:b + 1] = function(item).to(output_device)
            if pbar is not None:
                pbar.update(1)
            continue
        total = torch.zeros((1, out_channels, *out_sizes), device=output_device)
        weight = torch.zeros_like(total)
        grid = [_starts(spatial[d], tile[d], overlaps[d]) for d in range(dims)]
        for corner in itertools.product(*grid):
            piece = item
            for d, start in enumerate(corner):
                piece = piece.narrow(d + 2, start, min(tile[d], spatial[d] - start))
            result = function(piece).to(output_device)
            mask = torch.ones_like(result)
            for d in range(dims):
                feather = round(_scaled(amounts[d], overlaps[d], downscale))
                length = mask.shape[d + 2]
                if feather <= 0 or feather >= length:
                    continue
                for t in range(feather):
                    ramp = (t + 1) / feather
                    mask.narrow(d + 2, t, 1).mul_(ramp)
                    mask.narrow(d + 2, length - 1 - t, 1).mul_(ramp)
            total_view, weight_view = total, weight
            for d, start in enumerate(corner):
                offset = min(round(_scaled(positions[d], start, downscale)), out_sizes[d] - 1)
                length = min(result.shape[d + 2], out_sizes[d] - offset)  # rounding at the edge
                total_view = total_view.narrow(d + 2, offset, length)
                weight_view = weight_view.narrow(d + 2, offset, length)
                result, mask = result.narrow(d + 2, 0, length), mask.narrow(d + 2, 0, length)
            total_view += result * mask
            weight_view += mask
            if pbar is not None:
                pbar.update(1)
        output[b:b + 1] = total / weight
    return output
