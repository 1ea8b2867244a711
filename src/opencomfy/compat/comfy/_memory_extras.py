"""The rest of ComfyUI's ``comfy.model_management`` surface: dtype rules, casts, streams,
memory bookkeeping and platform flags, served through that module's ``__getattr__``.

Kept apart so that model_management itself stays about devices, memory and interrupts.
"""

from __future__ import annotations

import sys

import torch

from opencomfy.compat.comfy import model_management as mm

WINDOWS = sys.platform == "win32"
XFORMERS_IS_AVAILABLE = False
XFORMERS_VERSION = ""
XFORMERS_ENABLED_VAE = False
ENABLE_PYTORCH_ATTENTION = True
FORCE_FP32 = False
DISABLE_SMART_MEMORY = False
SUPPORT_FP8_OPS = False
MIN_WEIGHT_MEMORY_RATIO = 0.4 if torch.cuda.is_available() else 0.0
EXTRA_RESERVED_VRAM = 400 * 1024 * 1024
PINNED_MEMORY: dict = {}
MAX_PINNED_MEMORY = -1
lowvram_available = True
xpu_available = False
npu_available = False
mlu_available = False
directml_enabled = False
torch_version = torch.version.__version__
torch_version_numeric = tuple(int(part) for part in torch_version.split("+")[0].split(".")[:2])


class LoadedModel:
    """A model ComfyUI tracks as loaded on a device (what ``current_loaded_models`` holds).

    opencomfy's own models are moved by :mod:`opencomfy.diffusion.memory`; this wrapper is
    for packs that build or inspect entries themselves.
    """

    def __init__(self, model) -> None:
        self.model = model
        self.device = getattr(model, "load_device", mm.get_torch_device())
        self.currently_used = True

    def model_memory(self) -> int:
        inner = getattr(self.model, "model", self.model)
        return mm.module_size(inner) if hasattr(inner, "state_dict") else 0

    def model_loaded_memory(self) -> int:
        return self.model_memory()

    def model_offloaded_memory(self) -> int:
        return 0

    def model_unload(self, memory_to_free=None, unpatch_weights=True) -> bool:
        inner = getattr(self.model, "model", self.model)
        if inner is not None and hasattr(inner, "to"):
            inner.to(mm.unet_offload_device())
        return True

    def __eq__(self, other) -> bool:
        return isinstance(other, LoadedModel) and self.model is other.model

    def __hash__(self) -> int:
        return id(self.model)


def loaded_models(only_currently_used: bool = False) -> list:
    return [entry.model for entry in mm.current_loaded_models
            if not only_currently_used or entry.currently_used]


def get_all_torch_devices(exclude_current: bool = False) -> list:
    devices = [torch.device("cuda", i) for i in range(torch.cuda.device_count())] if mm._use_cuda() \
        else [torch.device("cpu")]
    if exclude_current:
        current = mm.get_torch_device()
        devices = [d for d in devices if d != current]
    return devices


def is_device_xpu(device) -> bool:
    return mm.is_device_type(device, "xpu")


def is_directml_enabled() -> bool:
    return False


def is_ascend_npu() -> bool:
    return False


def is_mlu() -> bool:
    return False


def is_ixuca() -> bool:
    return False


def mac_version():
    return None


def amd_min_version(device=None, min_rdna_version: int = 0) -> bool:
    return False


def get_supported_float8_types() -> list:
    return [getattr(torch, name) for name in ("float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2",
                                               "float8_e5m2fnuz", "float8_e8m0fnu") if hasattr(torch, name)]


def supports_fp8_compute(device=None) -> bool:
    device = device or mm.get_torch_device()
    if not mm.is_device_cuda(device):
        return False
    return torch.cuda.get_device_capability(device) >= (8, 9)


def extended_fp16_support() -> bool:
    return True


def dtype_size(dtype) -> int:
    """Bytes per element of ``dtype`` (4 when unknown, as for float32)."""
    try:
        return torch.empty((), dtype=dtype).element_size()
    except (TypeError, RuntimeError):
        return 4


def supports_dtype(device, dtype) -> bool:
    if dtype == torch.float32:
        return True
    if mm.is_device_cpu(device):
        return dtype == torch.bfloat16
    return dtype in (torch.float16, torch.bfloat16)


def supports_cast(device, dtype) -> bool:
    return dtype in (torch.float32, torch.float16, torch.bfloat16, *get_supported_float8_types())


def pick_weight_dtype(dtype, fallback_dtype, device=None):
    """``dtype`` unless it is missing, larger than the fallback, or not castable on ``device``."""
    if dtype is None or dtype_size(dtype) > dtype_size(fallback_dtype):
        dtype = fallback_dtype
    if device is not None and not supports_cast(device, dtype):
        dtype = fallback_dtype
    return dtype


def unet_manual_cast(weight_dtype, inference_device, supported_dtypes=(torch.float16, torch.bfloat16,
                                                                      torch.float32)):
    """The dtype to compute in when weights stored as ``weight_dtype`` cannot be (None: as stored)."""
    if weight_dtype == torch.float32 or (weight_dtype in (torch.float16, torch.bfloat16)
                                         and supports_dtype(inference_device, weight_dtype)):
        return None
    if mm.should_use_fp16(inference_device) and torch.float16 in supported_dtypes:
        return torch.float16
    if mm.should_use_bf16(inference_device) and torch.bfloat16 in supported_dtypes:
        return torch.bfloat16
    return torch.float32


def intermediate_dtype() -> torch.dtype:
    return torch.float32


def text_encoder_initial_device(load_device, offload_device, model_size: int = 0):
    return offload_device


def get_autocast_device(dev) -> str:
    return getattr(dev, "type", "cuda")


def device_should_use_non_blocking(device) -> bool:
    return False  # ComfyUI disables non-blocking transfers by default: they corrupt on some setups


def force_channels_last() -> bool:
    from opencomfy.compat.comfy.cli_args import args

    return bool(args.force_channels_last)


def pytorch_attention_enabled_vae() -> bool:
    return mm.pytorch_attention_enabled()


def pytorch_attention_flash_attention() -> bool:
    return mm.is_nvidia()


def force_upcast_attention_dtype():
    return None


def cast_to(weight: torch.Tensor, dtype=None, device=None, non_blocking: bool = False,
            copy: bool = False, stream=None) -> torch.Tensor:
    """``weight`` on ``device`` in ``dtype`` (either None: unchanged); a copy only if asked or
    needed."""
    if device is None or weight.device == torch.device(device):
        if not copy and (dtype is None or weight.dtype == dtype):
            return weight
        return weight.to(dtype=dtype, copy=copy)
    return weight.to(device=device, dtype=dtype, non_blocking=non_blocking, copy=copy)


def maximum_vram_for_weights(device=None) -> float:
    return mm.get_total_memory(device) * 0.88 - minimum_inference_memory()


def extra_reserved_memory() -> int:
    return EXTRA_RESERVED_VRAM


def minimum_inference_memory() -> int:
    return 1024 * 1024 * 1024 + extra_reserved_memory()


def use_more_memory(extra_memory, loaded_models, device) -> None:
    pass


def offloaded_memory(loaded_models, device) -> int:
    return 0


def resolve_lowvram_weight(weight, model, key):
    return weight


def get_offload_stream(device):
    return None  # transfers run on the default stream


def sync_stream(device, stream) -> None:
    pass


def pin_memory(tensor) -> bool:
    return False


def unpin_memory(tensor) -> bool:
    return False


def discard_cuda_async_error() -> None:
    pass


def is_oom(exc: BaseException) -> bool:
    return isinstance(exc, mm.OOM_EXCEPTION)


def debug_memory_summary() -> str:
    if mm._use_cuda():
        return torch.cuda.memory.memory_summary()
    return f"cpu: {mm.get_free_memory() // (1024 * 1024)} MB free of {int(mm.total_ram)} MB"
