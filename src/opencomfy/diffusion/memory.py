"""Devices, dtypes and which model sits where.

Models are loaded once (see :mod:`cache`) and kept on the offload device (the CPU). Before a
model runs, :func:`models_in_use` moves it to the compute device; if the device is short of
memory, the least recently used models there go back to the CPU first. LoRA patches are
applied to the weights for the duration of the block and the original weights restored after,
so clones of one loaded model with different LoRAs share its memory.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import OrderedDict

import torch

log = logging.getLogger(__name__)

_lock = threading.RLock()
# id(module) -> module, in least-recently-used order, for modules on the compute device.
_resident: OrderedDict[int, torch.nn.Module] = OrderedDict()


def cpu_forced() -> bool:
    try:
        from opencomfy.compat.comfy.cli_args import args
        return bool(getattr(args, "cpu", False))
    except ImportError:   # pragma: no cover
        return False


def compute_device() -> torch.device:
    """CUDA when present and ``--cpu`` was not given, else the CPU."""
    if not cpu_forced() and torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def offload_device() -> torch.device:
    return torch.device("cpu")


def weight_dtype(kind: str, device: torch.device | None = None) -> torch.dtype:
    """The dtype ``kind``'s weights are kept and computed in (see :mod:`precision`)."""
    from opencomfy.diffusion.precision import load_dtypes

    return load_dtypes(kind, device or compute_device())[1]


def module_bytes(module: torch.nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in module.parameters()) + \
        sum(b.numel() * b.element_size() for b in module.buffers())


def free_device_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return free
    return 1 << 62


def _module_device(module: torch.nn.Module) -> torch.device:
    for p in module.parameters():
        return p.device
    return offload_device()


def _make_room(device: torch.device, needed: int, keep: set[int]) -> None:
    """Offload least recently used modules until ``needed`` bytes (plus a margin) are free."""
    margin = 1 << 30
    for key in list(_resident):
        if free_device_bytes(device) >= needed + margin:
            return
        if key in keep:
            continue
        module = _resident.pop(key)
        log.info("offloading %s to free device memory", type(module).__name__)
        module.to(offload_device())
        if device.type == "cuda":
            torch.cuda.empty_cache()


def load_to_device(module: torch.nn.Module, device: torch.device, keep: set[int]) -> None:
    with _lock:
        key = id(module)
        if device.type != "cpu" and _module_device(module) != device:
            _make_room(device, module_bytes(module), keep)
            module.to(device)
        if device.type != "cpu":
            _resident[key] = module
            _resident.move_to_end(key)


def unload_all() -> None:
    """Move every module back to the CPU (``/api/free``)."""
    with _lock:
        for module in _resident.values():
            module.to(offload_device())
        _resident.clear()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


@contextlib.contextmanager
def models_in_use(*handles):
    """Put the handles' modules on the compute device with their LoRA patches applied.

    A handle has ``.modules()`` and ``.patches`` (``[(LoraPatch, strength), ...]``, each patch
    bound to one of those modules). Yields the device.
    """
    device = compute_device()
    modules = [m for h in handles for m in h.modules()]
    keep = {id(m) for m in modules}
    with _lock:
        for m in modules:
            load_to_device(m, device, keep)
    restores = []
    try:
        for handle in handles:
            for lora, strength in getattr(handle, "patches", ()):
                restores.append(lora.apply(strength))
        yield device
    finally:
        for restore in reversed(restores):
            restore()
