"""Weight precision of the UNet, VAE and text encoder, with ComfyUI's defaults and flags.

ComfyUI decides a *storage* dtype per model part (``--fp16-unet``, ``--fp32-text-enc``, ...,
``--force-fp32`` / ``--force-fp16``) and, where the device cannot compute in it well (any half
type on the CPU, any fp8), computes in float32 from the stored weights. Notably its text
encoder is stored in fp16 unless told otherwise, even on the CPU, and always computed in
float32. The rounding of the weights to the storage type changes the numbers, so to give
ComfyUI's images we round the same way: weights go through the storage dtype and are then kept
in the compute dtype (exact, since widening a float is lossless).

Flags are read from ``comfy.cli_args.args`` (our compat namespace), which the server fills from
its command line.
"""

from __future__ import annotations

import torch

PRECISION_FLAGS = (
    "force_fp32", "force_fp16",
    "fp32_unet", "fp64_unet", "bf16_unet", "fp16_unet", "fp8_e4m3fn_unet", "fp8_e5m2_unet", "fp8_e8m0fnu_unet",
    "fp16_vae", "fp32_vae", "bf16_vae",
    "fp8_e4m3fn_text_enc", "fp8_e5m2_text_enc", "fp16_text_enc", "fp32_text_enc", "bf16_text_enc",
)

_FLAG_DTYPES = {
    "fp32": torch.float32, "fp64": torch.float64, "bf16": torch.bfloat16, "fp16": torch.float16,
    "fp8_e4m3fn": torch.float8_e4m3fn, "fp8_e5m2": torch.float8_e5m2,
    "fp8_e8m0fnu": getattr(torch, "float8_e8m0fnu", torch.float8_e5m2),
}
_ORDER = {
    "unet": ("fp32", "fp64", "bf16", "fp16", "fp8_e4m3fn", "fp8_e5m2", "fp8_e8m0fnu"),
    "vae": ("fp16", "bf16", "fp32"),
    "text_encoder": ("fp8_e4m3fn", "fp8_e5m2", "fp16", "bf16", "fp32"),
}
_SUFFIX = {"unet": "unet", "vae": "vae", "text_encoder": "text_enc"}


def _flag(name: str) -> bool:
    try:
        from opencomfy.compat.comfy.cli_args import args
    except ImportError:   # pragma: no cover
        return False
    return bool(getattr(args, name, False))


def storage_dtype(kind: str, device: torch.device) -> torch.dtype:
    """The dtype ComfyUI stores ``kind`` ("unet", "vae", "text_encoder") in on ``device``."""
    for prefix in _ORDER[kind]:
        if _flag(f"{prefix}_{_SUFFIX[kind]}"):
            return _FLAG_DTYPES[prefix]
    if kind == "text_encoder":
        return torch.float16              # whatever the device
    if _flag("force_fp32") or device.type != "cuda":
        return torch.float32
    if kind == "unet":
        return torch.float16
    if _flag("force_fp16"):
        return torch.float16
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32


def load_dtypes(kind: str, device: torch.device) -> tuple[torch.dtype, torch.dtype]:
    """(storage, compute): round the weights through the first, keep them in the second."""
    storage = storage_dtype(kind, device)
    if kind == "text_encoder":
        return storage, torch.float32     # ComfyUI's text encoders always compute in float32
    if storage in (torch.float32, torch.float64):
        return storage, storage
    if device.type != "cuda" or storage not in (torch.float16, torch.bfloat16):
        # half types on the CPU and fp8 anywhere: computed in float32 from the stored weights
        # (ComfyUI's VAE is the exception: it runs in its storage type, even on the CPU)
        if kind == "vae" and storage in (torch.float16, torch.bfloat16):
            return storage, storage
        return storage, torch.float32
    return storage, storage


def round_through(state_dict: dict, storage: torch.dtype, compute: torch.dtype) -> dict:
    """The state dict's float tensors rounded to ``storage`` and widened back to ``compute``."""
    if storage == compute:
        return state_dict
    return {k: v.to(storage).to(compute) if v.is_floating_point() else v for k, v in state_dict.items()}
