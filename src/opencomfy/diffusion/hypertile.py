"""HyperTile (tfernd's method, as ComfyUI's HyperTile node applies it): at high resolutions the
self-attention of the outer UNet blocks runs within tiles of the latent instead of over all of
it, which costs far less and changes the image little.

A self-attention at depth ``d`` (its tokens are the latent downscaled by ``2**d``, ``d <=
max_depth``) splits its ``h x w`` token grid into ``nh x nw`` tiles, ``nh`` dividing ``h`` so
that tiles are at least ``tile_size / 8`` latent pixels high (times ``2**d`` with
``scale_depth``); among the ``swap_size`` largest such counts one is picked at random, so tile
borders move from step to step. A latent too small for two tiles is left alone.

One difference from ComfyUI: it derives the grid's height and width with the aspect ratio
inverted, which only matters for non-square latents; here the tiles are true rectangles of
the latent. The random choice is seeded by the step and block, so a graph's image repeats.
"""

from __future__ import annotations

import math
import random

import torch


def tile_count(size: int, min_tile: int, choices: int, rng: random.Random) -> int:
    """How many tiles to cut ``size`` tokens into: ``size // d`` for one of the ``choices``
    smallest divisors ``d >= min_tile`` of ``size`` (1 when no such divisor but ``size``)."""
    min_tile = min(min_tile, size)
    divisors = [d for d in range(min_tile, size + 1) if size % d == 0]
    counts = [size // d for d in divisors[:choices]]
    return counts[rng.randint(0, len(counts) - 1)] if len(counts) > 1 else counts[0]


def to_tiles(x: torch.Tensor, h: int, w: int, nh: int, nw: int) -> torch.Tensor:
    """``[B, h*w, C]`` row-major tokens -> ``[B*nh*nw, (h/nh)*(w/nw), C]`` tiles."""
    b, _, c = x.shape
    th, tw = h // nh, w // nw
    x = x.reshape(b, nh, th, nw, tw, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b * nh * nw, th * tw, c)


def from_tiles(x: torch.Tensor, h: int, w: int, nh: int, nw: int) -> torch.Tensor:
    """The inverse of :func:`to_tiles`."""
    c = x.shape[-1]
    th, tw = h // nh, w // nw
    x = x.reshape(-1, nh, nw, th, tw, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, h * w, c)


def hypertile_patch(model, tile_size: int, swap_size: int, max_depth: int, scale_depth: bool):
    """A clone of ``model`` whose outer self-attentions run tile by tile (module docstring)."""
    latent_tile = max(32, tile_size) // 8
    pending: dict[str, tuple[int, int, int, int] | None] = {"tiles": None}

    def tile_in(q, k, v, extra_options):
        shape = extra_options["original_shape"]
        height, width = int(shape[-2]), int(shape[-1])
        tokens = q.shape[-2]
        depth = next((d for d in range(max_depth + 1)
                      if (height / 2 ** d) * (width / 2 ** d) == tokens), None)
        if depth is None:
            return q, k, v
        h = round(math.sqrt(tokens * height / width))
        w = tokens // h
        sigma = float(extra_options["sigmas"].reshape(-1)[0]) if "sigmas" in extra_options else 0.0
        rng = random.Random(hash((round(sigma, 6), extra_options.get("transformer_index", 0))))
        factor = 2 ** depth if scale_depth else 1
        nh = tile_count(h, latent_tile * factor, swap_size, rng)
        nw = tile_count(w, latent_tile * factor, swap_size, rng)
        if nh * nw <= 1:
            return q, k, v
        pending["tiles"] = (h, w, nh, nw)
        tiles = to_tiles(q, h, w, nh, nw)
        return tiles, tiles, tiles

    def tile_out(out, extra_options):
        tiles, pending["tiles"] = pending["tiles"], None
        return out if tiles is None else from_tiles(out, *tiles)

    m = model.clone()
    m.set_model_attn1_patch(tile_in)
    m.set_model_attn1_output_patch(tile_out)
    return m
