"""ComfyUI's ``comfy.model_management``: interrupt checks and device/memory helpers.

Interrupts are per prompt in opencomfy (the engine's InterruptFlag of the running prompt),
so "interrupt current processing" sets the flag of the prompt running in this context; from
outside a run (an HTTP handler of a pack) it goes to the host's interrupt callback.
"""

from __future__ import annotations

import enum
import logging
import sys
import threading
from typing import Any, Callable

import psutil
import torch

from opencomfy.engine.progress import Interrupted

log = logging.getLogger(__name__)

InterruptProcessingException = Interrupted
OOM_EXCEPTION = torch.cuda.OutOfMemoryError

_host_interrupt: Callable[[bool], None] | None = None


def attach_interrupt(callback: Callable[[bool], None] | None) -> None:
    """Let the host interrupt the running job when a pack asks from outside a run."""
    global _host_interrupt
    _host_interrupt = callback


def interrupt_current_processing(value: bool = True) -> None:
    from opencomfy.engine.progress import current_context

    ctx = current_context()
    if ctx is not None and ctx.interrupt is not None:
        if value:
            ctx.interrupt.set()
        else:
            ctx.interrupt.clear()
    elif _host_interrupt is not None:
        _host_interrupt(value)


def processing_interrupted() -> bool:
    from opencomfy.engine.progress import current_context

    ctx = current_context()
    return bool(ctx is not None and ctx.interrupt is not None and ctx.interrupt.is_set())


def throw_exception_if_processing_interrupted() -> None:
    from opencomfy.engine.progress import throw_if_interrupted

    throw_if_interrupted()


class VRAMState(enum.Enum):
    DISABLED = 0
    NO_VRAM = 1
    LOW_VRAM = 2
    NORMAL_VRAM = 3
    HIGH_VRAM = 4
    SHARED = 5


class CPUState(enum.Enum):
    GPU = 0
    CPU = 1
    MPS = 2


def _cpu_forced() -> bool:
    from opencomfy.compat.comfy.cli_args import args

    return bool(args.cpu)


def _use_cuda() -> bool:
    return not _cpu_forced() and torch.cuda.is_available()


cpu_state = CPUState.CPU if not torch.cuda.is_available() else CPUState.GPU
vram_state = VRAMState.NORMAL_VRAM if torch.cuda.is_available() else VRAMState.DISABLED
set_vram_to = VRAMState.NORMAL_VRAM
current_loaded_models: list = []


def get_torch_device() -> torch.device:
    """``cuda`` when a GPU is usable and ``--cpu`` was not given, else ``cpu``."""
    if _use_cuda():
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def get_torch_device_name(device=None) -> str:
    device = device or get_torch_device()
    if getattr(device, "type", device) == "cuda":
        return f"{device} {torch.cuda.get_device_name(device)}"
    return str(device)


def intermediate_device() -> torch.device:
    return torch.device("cpu")


def unet_offload_device() -> torch.device:
    return torch.device("cpu")


def text_encoder_offload_device() -> torch.device:
    return torch.device("cpu")


def vae_offload_device() -> torch.device:
    return torch.device("cpu")


def unet_inital_load_device(parameters=0, dtype=None) -> torch.device:
    return get_torch_device()


def text_encoder_device() -> torch.device:
    return get_torch_device()


def vae_device() -> torch.device:
    return get_torch_device()


def cpu_mode() -> bool:
    return not _use_cuda()


def mps_mode() -> bool:
    return False


def is_device_type(device, kind: str) -> bool:
    return getattr(device, "type", None) == kind


def is_device_cpu(device) -> bool:
    return is_device_type(device, "cpu")


def is_device_mps(device) -> bool:
    return is_device_type(device, "mps")


def is_device_cuda(device) -> bool:
    return is_device_type(device, "cuda")


def is_nvidia() -> bool:
    return _use_cuda() and torch.version.cuda is not None


def is_amd() -> bool:
    return _use_cuda() and getattr(torch.version, "hip", None) is not None


def is_intel_xpu() -> bool:
    return False


def xformers_enabled() -> bool:
    return False


def xformers_enabled_vae() -> bool:
    return False


def pytorch_attention_enabled() -> bool:
    return True


def sage_attention_enabled() -> bool:
    return False


def flash_attention_enabled() -> bool:
    return False


def device_supports_non_blocking(device) -> bool:
    return is_device_cuda(device)


def should_use_fp16(device=None, model_params=0, prioritize_performance=True, manual_cast=False) -> bool:
    device = device or get_torch_device()
    return is_device_cuda(device)


def should_use_bf16(device=None, model_params=0, prioritize_performance=True, manual_cast=False) -> bool:
    device = device or get_torch_device()
    return is_device_cuda(device) and torch.cuda.is_bf16_supported()


def unet_dtype(device=None, model_params=0, supported_dtypes=None, weight_dtype=None) -> torch.dtype:
    return torch.float16 if should_use_fp16(device) else torch.float32


def vae_dtype(device=None, allowed_dtypes=None) -> torch.dtype:
    return torch.float32


def text_encoder_dtype(device=None) -> torch.dtype:
    return torch.float16 if should_use_fp16(device) else torch.float32


def cast_to_device(tensor: torch.Tensor, device, dtype, copy: bool = False) -> torch.Tensor:
    return tensor.to(device=device, dtype=dtype, copy=copy)


def module_size(module) -> int:
    return sum(t.nelement() * t.element_size() for t in module.state_dict().values())


def total_ram_mb() -> float:
    return psutil.virtual_memory().total / (1024 * 1024)


total_ram = total_ram_mb()


def get_total_memory(dev=None, torch_total_too: bool = False) -> Any:
    dev = dev or get_torch_device()
    if is_device_cuda(dev):
        total = torch.cuda.mem_get_info(dev)[1]
        reserved = torch.cuda.memory_reserved(dev)
        return (total, reserved) if torch_total_too else total
    total = psutil.virtual_memory().total
    return (total, total) if torch_total_too else total


total_vram = get_total_memory() / (1024 * 1024)


def get_free_memory(dev=None, torch_free_too: bool = False) -> Any:
    """Free bytes on ``dev`` (system RAM for the CPU); with the torch cache too if asked."""
    dev = dev or get_torch_device()
    if is_device_cuda(dev):
        free_cuda = torch.cuda.mem_get_info(dev)[0]
        reserved = torch.cuda.memory_reserved(dev)
        allocated = torch.cuda.memory_allocated(dev)
        free_torch = reserved - allocated
        total = free_cuda + free_torch
        return (total, free_torch) if torch_free_too else total
    free = psutil.virtual_memory().available
    return (free, free) if torch_free_too else free


def soft_empty_cache(force: bool = False) -> None:
    if _use_cuda():
        torch.cuda.empty_cache()
        torch.cuda.ipc_collect()


def unload_all_models() -> None:
    current_loaded_models.clear()
    # The diffusion extra keeps its own model cache; release it too when it is loaded.
    diffusion = sys.modules.get("opencomfy.diffusion")
    if diffusion is not None:
        diffusion.free_models()
    soft_empty_cache(True)


def free_memory(memory_required, device, keep_loaded=()) -> list:
    """opencomfy keeps no model cache of its own here: nothing to unload but torch's cache."""
    soft_empty_cache()
    return []


def load_models_gpu(models, memory_required=0, force_patch_weights=False, minimum_memory_required=None,
                    force_full_load=False) -> None:
    """Move models that know how (``.to``/``.model``) onto the torch device."""
    device = get_torch_device()
    for model in models:
        target = getattr(model, "model", model)
        if hasattr(target, "to") and not is_device_cpu(device):
            try:
                target.to(device)
            except Exception:
                log.debug("could not move %r to %s", model, device, exc_info=True)


def load_model_gpu(model) -> None:
    load_models_gpu([model])


def cleanup_models(keep_clone_weights_loaded: bool = False) -> None:
    pass


def cleanup_models_gc() -> None:
    pass


def throw_if_oom(exc: BaseException) -> None:
    if isinstance(exc, OOM_EXCEPTION):
        raise exc



interrupt_processing_mutex = threading.RLock()


def __getattr__(name: str) -> Any:
    # ComfyUI keeps the interrupt as a module global; ours is per prompt.
    if name == "interrupt_processing":
        return processing_interrupted()
    if not name.startswith("__"):
        from opencomfy.compat.comfy import _memory_extras

        if hasattr(_memory_extras, name):
            return getattr(_memory_extras, name)
    raise AttributeError(f"module 'comfy.model_management' has no attribute {name!r}")
