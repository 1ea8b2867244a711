"""Run a function over overlapping tiles of an image-like tensor and blend the results."""

from __future__ import annotations

import torch


def _starts(size: int, tile: int, overlap: int, step: int) -> list[int]:
    if size <= tile:
        return [0]
    stride = max(tile - overlap, step)
    starts = list(range(0, size - tile, stride))
    starts.append(size - tile)
    return [s - s % step for s in starts]


def _ramp(length: int, fade: int, at_start: bool, at_end: bool) -> torch.Tensor:
    w = torch.ones(length)
    fade = min(fade, length // 2)
    if fade > 0:
        ramp = (torch.arange(fade, dtype=torch.float32) + 1) / (fade + 1)
        if not at_start:
            w[:fade] = ramp
        if not at_end:
            w[-fade:] = ramp.flip(0)
    return w


def run_tiled(x: torch.Tensor, fn, *, tile: int, overlap: int, scale: float, out_channels: int,
              step: int = 1) -> torch.Tensor:
    """``fn`` on tiles of ``x`` ``[B, C, H, W]``; the output is ``scale`` times the input size.

    Overlapping parts are blended with linear weights so that tile seams do not show.
    """
    b, _, h, w = x.shape
    out_h, out_w = round(h * scale), round(w * scale)
    out = torch.zeros(b, out_channels, out_h, out_w)
    weight = torch.zeros(1, 1, out_h, out_w)
    tile_h, tile_w = min(tile, h), min(tile, w)
    for top in _starts(h, tile_h, overlap, step):
        for left in _starts(w, tile_w, overlap, step):
            piece = fn(x[:, :, top:top + tile_h, left:left + tile_w]).float()
            oh, ow = piece.shape[-2:]
            ot, ol = round(top * scale), round(left * scale)
            fade = round(overlap * scale)
            wy = _ramp(oh, fade, top == 0, top + tile_h >= h)
            wx = _ramp(ow, fade, left == 0, left + tile_w >= w)
            mask = (wy[:, None] * wx[None, :])[None, None]
            out[:, :, ot:ot + oh, ol:ol + ow] += piece * mask
            weight[:, :, ot:ot + oh, ol:ol + ow] += mask
    return out / weight.clamp(min=1e-8)
