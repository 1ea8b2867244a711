"""ComfyUI's ``comfy.utils``: the progress bar, weight files, state-dict helpers, resizing and
tiling, as custom nodes call them.

``ProgressBar`` feeds the engine's progress reporting (``progress`` / ``progress_state``
events, previews) and is where a long-running node notices an interrupt, as in ComfyUI.
Weight files go through :mod:`opencomfy.weights` (pickles only when the operator opted in).
"""

from __future__ import annotations

import logging
import os
from typing import Any, Callable

import torch

from opencomfy.compat.comfy._tiling import tiled_scale_multidim
# Pickled checkpoints are read only when the operator opted in (`--allow-pickle-models`).
from opencomfy.config import ALLOW_PICKLE_ENV, pickle_models_allowed
from opencomfy.diffusion import upscale as _upscale

log = logging.getLogger(__name__)

PROGRESS_BAR_ENABLED = True


def _engine_progress_hook(value, total, preview=None, node_id=None, **_ignored) -> None:
    from opencomfy.engine import progress

    progress.throw_if_interrupted()
    progress.report_progress(value, total, node_id=node_id, preview=preview)


PROGRESS_BAR_HOOK: Callable[..., None] | None = _engine_progress_hook


def set_progress_bar_global_hook(function: Callable[..., None] | None) -> None:
    """Replace the function every new ProgressBar reports to."""
    global PROGRESS_BAR_HOOK
    PROGRESS_BAR_HOOK = function


def set_progress_bar_enabled(enabled: bool) -> None:
    global PROGRESS_BAR_ENABLED
    PROGRESS_BAR_ENABLED = enabled


class ProgressBar:
    """Progress of the running node: ``update(delta)`` or ``update_absolute(value, total)``.

    The hook is captured when the bar is made, as in ComfyUI; the node id defaults to the node
    that is running in this context.
    """

    def __init__(self, total: int, node_id: str | None = None) -> None:
        self.total = total
        self.current = 0
        self.hook = PROGRESS_BAR_HOOK
        if node_id is None:
            from opencomfy.engine.progress import current_context

            ctx = current_context()
            node_id = ctx.node_id if ctx is not None else None
        self.node_id = node_id

    def update_absolute(self, value, total=None, preview=None) -> None:
        if total is not None:
            self.total = total
        if value > self.total:
            value = self.total
        self.current = value
        if self.hook is not None:
            self.hook(self.current, self.total, preview, node_id=self.node_id)

    def update(self, value) -> None:
        self.update_absolute(self.current + value)


def load_torch_file(ckpt, safe_load: bool = False, device=None, return_metadata: bool = False):
    """Load a state dict. safetensors always; .ckpt/.pt/.pth only when pickle is allowed."""
    from opencomfy import weights
    from opencomfy.compat import safetensors_file

    if device is None:
        device = torch.device("cpu")
    path = str(ckpt)
    metadata = None
    if path.lower().endswith(weights.SAFETENSORS_EXTENSIONS):
        sd, metadata = safetensors_file.load_file(path, device=device)
    else:
        if not pickle_models_allowed():
            raise weights.PickleRefused(
                f"refusing to load {os.path.basename(path)}: pickled checkpoints can run code; "
                f"use a .safetensors file or set {ALLOW_PICKLE_ENV}=1")
        loaded = weights.load_pickle(path)
        if isinstance(loaded, dict) and "state_dict" in loaded:
            sd = loaded["state_dict"]
        elif isinstance(loaded, dict) and "params_ema" in loaded:
            sd = loaded["params_ema"]
        else:
            sd = loaded
        if isinstance(sd, dict):
            sd = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in sd.items()}
    return (sd, metadata) if return_metadata else sd


def save_torch_file(sd: dict, ckpt, metadata: dict | None = None) -> None:
    from opencomfy.compat import safetensors_file

    safetensors_file.save_file(sd, ckpt, metadata=metadata)


def safetensors_header(safetensors_path, max_size: int = 100 * 1024 * 1024) -> bytes | None:
    """The JSON header bytes of a safetensors file, or None when larger than ``max_size``."""
    from opencomfy.compat import safetensors_file

    return safetensors_file.read_header(safetensors_path, max_size=max_size)


def calculate_parameters(sd: dict, prefix: str = "") -> int:
    return sum(v.nelement() for k, v in sd.items() if k.startswith(prefix))


def state_dict_prefix_replace(state_dict: dict, replace_prefix: dict, filter_keys: bool = False) -> dict:
    out = {} if filter_keys else state_dict
    for old, new in replace_prefix.items():
        for key in [k for k in state_dict if k.startswith(old)]:
            out[new + key[len(old):]] = state_dict.pop(key)
    return out


def repeat_to_batch_size(tensor: torch.Tensor, batch_size: int, dim: int = 0) -> torch.Tensor:
    """Repeat (or cut) ``tensor`` along ``dim`` to exactly ``batch_size`` entries."""
    size = tensor.shape[dim]
    if size > batch_size:
        return tensor.narrow(dim, 0, batch_size)
    if size < batch_size:
        reps = [1] * tensor.ndim
        reps[dim] = -(-batch_size // size)
        return tensor.repeat(reps).narrow(dim, 0, batch_size)
    return tensor


def resize_to_batch_size(tensor: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Pick evenly spaced entries so the batch has ``batch_size`` of them."""
    size = tensor.shape[0]
    if size == batch_size:
        return tensor
    if batch_size <= 1:
        return tensor[:batch_size]
    idx = [min(size - 1, round(i * (size - 1) / (batch_size - 1))) for i in range(batch_size)]
    return tensor[idx]


def get_attr(obj, attr: str):
    for name in attr.split("."):
        obj = getattr(obj, name)
    return obj


def set_attr(obj, attr: str, value) -> Any:
    *parents, last = attr.split(".")
    for name in parents:
        obj = getattr(obj, name)
    prev = getattr(obj, last)
    setattr(obj, last, value)
    return prev


def set_attr_param(obj, attr: str, value) -> Any:
    """Set ``obj.<attr>`` to ``value`` as a frozen parameter; returns the old one."""
    return set_attr(obj, attr, torch.nn.Parameter(value, requires_grad=False))


def copy_to_param(obj, attr: str, value) -> None:
    """Copy ``value`` into the existing parameter ``obj.<attr>`` in place (keeps its storage)."""
    get_attr(obj, attr).data.copy_(value)


def state_dict_key_replace(state_dict: dict, keys_to_replace: dict) -> dict:
    """Rename whole keys (``old -> new``) in place."""
    for old, new in keys_to_replace.items():
        if old in state_dict:
            state_dict[new] = state_dict.pop(old)
    return state_dict


def weight_dtype(sd: dict, prefix: str = "") -> torch.dtype | None:
    """The dtype holding most of the weights under ``prefix`` (by element count)."""
    totals: dict[torch.dtype, int] = {}
    for key, value in sd.items():
        if key.startswith(prefix) and isinstance(value, torch.Tensor):
            totals[value.dtype] = totals.get(value.dtype, 0) + value.nelement()
    return max(totals, key=lambda dtype: totals[dtype]) if totals else None


def convert_sd_to(state_dict: dict, dtype: torch.dtype) -> dict:
    """Every tensor of ``state_dict`` cast to ``dtype`` (in place)."""
    for key in list(state_dict):
        if isinstance(state_dict[key], torch.Tensor):
            state_dict[key] = state_dict[key].to(dtype)
    return state_dict


def reshape_mask(input_mask: torch.Tensor, output_shape) -> torch.Tensor:
    """A mask resized to ``output_shape`` ``[B, C, *spatial]``: interpolated over the spatial
    dimensions, its channel repeated to ``C`` and its batch repeated to ``B``."""
    dims = len(output_shape) - 2
    mode = {1: "linear", 2: "bilinear", 3: "trilinear"}.get(dims)
    if mode is None:
        raise ValueError(f"reshape_mask: {dims} spatial dimensions are not supported")
    mask = input_mask.reshape((-1, 1) + tuple(input_mask.shape[-dims:]))
    mask = torch.nn.functional.interpolate(mask, size=tuple(output_shape[2:]), mode=mode)
    if mask.shape[1] < output_shape[1]:
        reps = [1, -(-output_shape[1] // mask.shape[1])] + [1] * dims
        mask = mask.repeat(reps)[:, :output_shape[1]]
    return repeat_to_batch_size(mask, output_shape[0])


def string_to_seed(data) -> int:
    """CRC-32 of a string (each character's code point) or bytes: a seed from a name."""
    crc = 0xFFFFFFFF
    for item in data:
        value = ord(item) if isinstance(item, str) else item
        crc ^= value
        for _ in range(8):
            crc = (crc >> 1) ^ 0xEDB88320 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


# Load switches ComfyUI reads from its command line (we always read safetensors without mmap
# tricks and pickles only with the opt-in).
MMAP_TORCH_FILES = False
DISABLE_MMAP = False
ALWAYS_SAFE_LOAD = True


def tiled_scale(samples: torch.Tensor, function, tile_x: int = 64, tile_y: int = 64, overlap: int = 8,
                upscale_amount: float = 4, out_channels: int = 3, output_device="cpu", pbar=None):
    """``function`` over overlapping ``tile_x`` x ``tile_y`` tiles of ``[B, C, H, W]``, blended."""
    return tiled_scale_multidim(samples, function, (tile_y, tile_x), overlap=overlap,
                                upscale_amount=upscale_amount, out_channels=out_channels,
                                output_device=output_device, pbar=pbar)


# The tile count of tiled_scale, shared with the upscale-model node (same grid).
get_tiled_scale_steps = _upscale.get_tiled_scale_steps


def __getattr__(name: str):
    # The image-scaling helpers live with the core nodes; imported on first use.
    if name in ("common_upscale", "lanczos", "bislerp"):
        from opencomfy.nodes import image_scaling

        return getattr(image_scaling, name)
    raise AttributeError(f"module 'comfy.utils' has no attribute {name!r}")
