"""Resampling shared by the image and latent nodes: ComfyUI's ``comfy.utils.common_upscale``.

Tensors are channels-first here (``[B, C, H, W]``, or 5-D ``[B, C, T, H, W]`` for video
latents); the IMAGE nodes move their channel axis before and after calling in.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image

UPSCALE_METHODS = ("nearest-exact", "bilinear", "area", "bicubic", "lanczos")


def repeat_to_batch_size(tensor: torch.Tensor, batch_size: int, dim: int = 0) -> torch.Tensor:
    """Cut or tile ``tensor`` along ``dim`` to exactly ``batch_size`` entries."""
    size = tensor.shape[dim]
    if size > batch_size:
        return tensor.narrow(dim, 0, batch_size)
    if size < batch_size:
        repeats = [1] * tensor.ndim
        repeats[dim] = math.ceil(batch_size / size)
        return tensor.repeat(repeats).narrow(dim, 0, batch_size)
    return tensor


def _slerp_rows(a: torch.Tensor, b: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between rows of ``a`` and ``b`` ([N, C]); ratio is [N, 1].

    Directions are slerped and lengths interpolated linearly, as ComfyUI's bislerp does.
    """
    channels = a.shape[-1]
    a_norm = torch.norm(a, dim=-1, keepdim=True)
    b_norm = torch.norm(b, dim=-1, keepdim=True)
    a_unit = a / a_norm
    b_unit = b / b_norm
    a_unit[a_norm.expand(-1, channels) == 0.0] = 0.0
    b_unit[b_norm.expand(-1, channels) == 0.0] = 0.0
    dot = (a_unit * b_unit).sum(1)
    omega = torch.acos(dot)
    sin_omega = torch.sin(omega)
    r = ratio.squeeze(1)
    out = ((torch.sin((1.0 - r) * omega) / sin_omega).unsqueeze(1) * a_unit
           + (torch.sin(r * omega) / sin_omega).unsqueeze(1) * b_unit)
    out *= (a_norm * (1.0 - ratio) + b_norm * ratio).expand(-1, channels)
    # Nearly parallel: keep a; nearly opposite: fall back to a straight line.
    same = dot > 1 - 1e-5
    opposite = dot < 1e-5 - 1
    out[same] = a[same]
    out[opposite] = (a * (1.0 - ratio) + b * ratio)[opposite]
    return out


def _bilinear_taps(old: int, new: int, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For each of ``new`` positions: (fraction, left source index, right source index)."""
    left = torch.arange(old, dtype=torch.float32, device=device).reshape(1, 1, 1, -1)
    left = torch.nn.functional.interpolate(left, size=(1, new), mode="bilinear")
    fraction = left - left.floor()
    right = torch.arange(old, dtype=torch.float32, device=device).reshape(1, 1, 1, -1) + 1
    right[:, :, :, -1] -= 1
    right = torch.nn.functional.interpolate(right, size=(1, new), mode="bilinear")
    return fraction, left.to(torch.int64), right.to(torch.int64)


def bislerp(samples: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Resize by slerping between neighbouring latent vectors, width first, then height."""
    orig_dtype = samples.dtype
    samples = samples.float()
    n, c, h, w = samples.shape

    fraction, left, right = _bilinear_taps(w, width, samples.device)
    left = left.expand((n, c, h, -1))
    right = right.expand((n, c, h, -1))
    fraction = fraction.expand((n, 1, h, -1))
    rows_a = samples.gather(-1, left).movedim(1, -1).reshape((-1, c))
    rows_b = samples.gather(-1, right).movedim(1, -1).reshape((-1, c))
    wide = _slerp_rows(rows_a, rows_b, fraction.movedim(1, -1).reshape((-1, 1)))
    wide = wide.reshape(n, h, width, c).movedim(-1, 1)

    fraction, top, bottom = _bilinear_taps(h, height, samples.device)
    top = top.reshape((1, 1, -1, 1)).expand((n, c, -1, width))
    bottom = bottom.reshape((1, 1, -1, 1)).expand((n, c, -1, width))
    fraction = fraction.reshape((1, 1, -1, 1)).expand((n, 1, -1, width))
    rows_a = wide.gather(-2, top).movedim(1, -1).reshape((-1, c))
    rows_b = wide.gather(-2, bottom).movedim(1, -1).reshape((-1, c))
    tall = _slerp_rows(rows_a, rows_b, fraction.movedim(1, -1).reshape((-1, 1)))
    return tall.reshape(n, height, width, c).movedim(-1, 1).to(orig_dtype)


def lanczos(samples: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Resize through Pillow's Lanczos filter (8-bit per channel, as ComfyUI does)."""
    out = []
    for image in samples:
        pixels = np.clip(255.0 * image.movedim(0, -1).cpu().numpy(), 0, 255).astype(np.uint8)
        if pixels.shape[-1] == 1:  # Pillow wants [H, W] for one channel
            pixels = pixels[..., 0]
        resized = Image.fromarray(pixels).resize((width, height), resample=Image.Resampling.LANCZOS)
        array = np.array(resized).astype(np.float32) / 255.0
        if array.ndim == 2:
            array = array[..., None]
        out.append(torch.from_numpy(array).movedim(-1, 0))
    return torch.stack(out).to(samples.device, samples.dtype)


def _center_crop(samples: torch.Tensor, width: int, height: int) -> torch.Tensor:
    old_width = samples.shape[-1]
    old_height = samples.shape[-2]
    old_aspect = old_width / old_height
    new_aspect = width / height
    x = y = 0
    if old_aspect > new_aspect:
        x = round((old_width - old_width * (new_aspect / old_aspect)) / 2)
    elif old_aspect < new_aspect:
        y = round((old_height - old_height * (old_aspect / new_aspect)) / 2)
    return samples.narrow(-2, y, old_height - y * 2).narrow(-1, x, old_width - x * 2)


def common_upscale(samples: torch.Tensor, width: int, height: int, upscale_method: str,
                   crop: str) -> torch.Tensor:
    """Resize ``[B, C, H, W]`` (or ``[B, C, T, H, W]``) to ``height`` x ``width``.

    ``upscale_method``: nearest-exact, bilinear, area, bicubic, lanczos or bislerp.
    ``crop``: "center" first crops to the target aspect ratio; anything else keeps it all.
    """
    orig_shape = tuple(samples.shape)
    ndim = len(orig_shape)   # compared apart from the tuple, which the checker would narrow per length
    if ndim > 4:
        # Fold the extra (time) axis into the batch so every frame is resized alike.
        samples = samples.reshape(orig_shape[0], orig_shape[1], -1, orig_shape[-2], orig_shape[-1])
        samples = samples.movedim(2, 1).reshape(-1, orig_shape[1], orig_shape[-2], orig_shape[-1])
    s = _center_crop(samples, width, height) if crop == "center" else samples
    if upscale_method == "bislerp":
        out = bislerp(s, width, height)
    elif upscale_method == "lanczos":
        out = lanczos(s, width, height)
    else:
        out = torch.nn.functional.interpolate(s, size=(height, width), mode=upscale_method)
    if ndim == 4:
        return out
    out = out.reshape((orig_shape[0], -1, orig_shape[1]) + (height, width))
    return out.movedim(2, 1).reshape(orig_shape[:-2] + (height, width))
