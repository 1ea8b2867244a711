"""Image upscale models (ESRGAN, Real-ESRGAN compact, SwinIR, DAT, ...) over spandrel.

spandrel recognises the architecture from the state dict and gives an
``ImageModelDescriptor``; that descriptor is the UPSCALE_MODEL value, as in ComfyUI, so custom
nodes that read ``.scale`` or call it directly keep working. Images are upscaled in overlapping
tiles the way ComfyUI's ``comfy.utils.tiled_scale`` does it (same tile positions and feathered
blend), and the tile shrinks by half whenever the device runs out of memory.

Only ``.safetensors`` files load by default; pickles need ``--allow-pickle-models``.
torch is the only import at module level: compat's ``comfy.utils`` takes the tiling from here.
"""

from __future__ import annotations

import itertools
import math
import os

import torch

from opencomfy.weights import SAFETENSORS_EXTENSIONS, UnsupportedCheckpoint, load_pickle, read_state_dict

DEFAULT_TILE = 512
DEFAULT_OVERLAP = 32
MIN_TILE = 128  # below this, an out-of-memory error is final
# Keys of SwinIR-style files saved from a DataParallel wrapper (``module.`` prefix).
_DATA_PARALLEL_MARKER = "module.layers.0.residual_group.blocks.0.norm1.weight"


class UpscaleModelError(UnsupportedCheckpoint):
    """The file is not an upscale model spandrel can run on single images."""


def read_upscale_state_dict(path: str) -> dict:
    """The tensors of an upscale model file; pickles only when the operator opted in."""
    name = os.path.basename(path)
    if path.lower().endswith(SAFETENSORS_EXTENSIONS):
        try:
            return read_state_dict(path)
        except Exception as exc:   # safetensors raises its own error types for broken files
            raise UpscaleModelError(f"{name} is not a readable safetensors file: {exc}") from exc
    data = load_pickle(path, "upscale model")   # raises PickleRefused unless opted in
    if not isinstance(data, dict):
        raise UpscaleModelError(f"{name} holds no state dict")
    return data


def load_upscale_model(path: str):
    """A spandrel ``ImageModelDescriptor`` (in eval mode, on the CPU) for the file at ``path``."""
    from spandrel import ImageModelDescriptor, ModelLoader, UnsupportedModelError, canonicalize_state_dict

    name = os.path.basename(path)
    state_dict = canonicalize_state_dict(read_upscale_state_dict(path))
    if _DATA_PARALLEL_MARKER in state_dict:
        state_dict = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state_dict.items()}
    try:
        descriptor = ModelLoader().load_from_state_dict(state_dict)
    except UnsupportedModelError as exc:
        raise UpscaleModelError(f"{name}: not an upscale model architecture spandrel knows") from exc
    except (KeyError, RuntimeError, ValueError) as exc:
        raise UpscaleModelError(f"{name}: the weights do not fit the detected architecture ({exc})") from exc
    if not isinstance(descriptor, ImageModelDescriptor):
        raise UpscaleModelError(f"{name} is a {type(descriptor).__name__} ({descriptor.architecture.name}); "
                                "an upscale model must take a single image")
    return descriptor.eval()


# --- ComfyUI's tiling ---------------------------------------------------------------------

def get_tiled_scale_steps(width: int, height: int, tile_x: int, tile_y: int, overlap: int) -> int:
    """How many tiles one image of ``width`` x ``height`` takes (progress total, as ComfyUI)."""
    rows = 1 if height <= tile_y else math.ceil((height - overlap) / (tile_y - overlap))
    cols = 1 if width <= tile_x else math.ceil((width - overlap) / (tile_x - overlap))
    return rows * cols


def _positions(size: int, tile: int, overlap: int) -> list[int]:
    if size <= tile:
        return [0]
    return [max(0, min(size - overlap, p)) for p in range(0, size - overlap, tile - overlap)]


def tiled_scale(samples: torch.Tensor, function, tile_x: int = 64, tile_y: int = 64, overlap: int = 8,
                upscale_amount: float = 4, out_channels: int = 3, output_device="cpu", pbar=None) -> torch.Tensor:
    """``function`` over overlapping tiles of each image of ``samples`` ``[B, C, H, W]``.

    The output is ``upscale_amount`` times the size. Each tile's result is weighted by a mask
    that ramps up over the overlap from every edge, and the sums are normalised, so seams fade.
    An image that fits in one tile is passed whole. ``pbar.update(1)`` is called per tile.
    """
    _b, _c, h, w = samples.shape
    out_h, out_w = round(h * upscale_amount), round(w * upscale_amount)
    output = torch.empty((samples.shape[0], out_channels, out_h, out_w), device=output_device)
    for b in range(samples.shape[0]):
        s = samples[b:b + 1]
        if h <= tile_y and w <= tile_x:
            output[b:b + 1] = function(s).to(output_device)
            if pbar is not None:
                pbar.update(1)
            continue
        out = torch.zeros((1, out_channels, out_h, out_w), device=output_device)
        out_div = torch.zeros_like(out)
        for top, left in itertools.product(_positions(h, tile_y, overlap), _positions(w, tile_x, overlap)):
            piece = s[:, :, top:top + min(tile_y, h - top), left:left + min(tile_x, w - left)]
            result = function(piece).to(output_device)
            mask = torch.ones_like(result)
            feather = round(overlap * upscale_amount)
            for dim in (2, 3):
                if feather >= mask.shape[dim]:
                    continue
                for t in range(feather):
                    a = (t + 1) / feather
                    mask.narrow(dim, t, 1).mul_(a)
                    mask.narrow(dim, mask.shape[dim] - 1 - t, 1).mul_(a)
            y, x = round(top * upscale_amount), round(left * upscale_amount)
            rh, rw = result.shape[2], result.shape[3]
            out[:, :, y:y + rh, x:x + rw] += result * mask
            out_div[:, :, y:y + rh, x:x + rw] += mask
            if pbar is not None:
                pbar.update(1)
        output[b:b + 1] = out / out_div
    return output


class TileProgress:
    """Per-tile progress of the running node (and the place an interrupt is noticed)."""

    def __init__(self, total: int):
        self.total, self.current = total, 0

    def update(self, n: int) -> None:
        from opencomfy.engine.progress import report_progress, throw_if_interrupted

        throw_if_interrupted()
        self.current = min(self.total, self.current + n)
        report_progress(self.current, self.total)


class _Handle:
    """Lets :func:`models_in_use` move the descriptor's module to the compute device."""

    patches: tuple = ()

    def __init__(self, descriptor):
        self.descriptor = descriptor

    def modules(self):
        return [self.descriptor.model]


def _is_out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower()


def upscale_image(descriptor, image: torch.Tensor, *, tile: int = DEFAULT_TILE,
                  overlap: int = DEFAULT_OVERLAP) -> torch.Tensor:
    """IMAGE ``[B, H, W, C]`` -> IMAGE ``scale`` times larger, in 0..1, on the CPU."""
    from opencomfy.diffusion.memory import models_in_use

    channels = descriptor.input_channels
    pixels = image[..., :channels] if image.shape[-1] >= channels else image
    if pixels.shape[-1] != channels:
        raise ValueError(f"this upscale model takes {channels}-channel images; the image has {image.shape[-1]}")
    with models_in_use(_Handle(descriptor)) as device:
        dtype = next(descriptor.model.parameters()).dtype
        x = pixels.movedim(-1, 1).to(device, dtype)
        while True:
            steps = x.shape[0] * get_tiled_scale_steps(x.shape[3], x.shape[2], tile, tile, overlap)
            try:
                out = tiled_scale(x, descriptor, tile_x=tile, tile_y=tile, overlap=overlap,
                                  upscale_amount=descriptor.scale, out_channels=descriptor.output_channels,
                                  pbar=TileProgress(steps))
                break
            except (torch.OutOfMemoryError, RuntimeError) as exc:
                if not _is_out_of_memory(exc) or tile // 2 < MIN_TILE:
                    raise
                tile //= 2
                if device.type == "cuda":
                    torch.cuda.empty_cache()
    return out.float().movedim(1, -1).clamp(0.0, 1.0).cpu()
