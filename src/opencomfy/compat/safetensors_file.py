"""Read and write .safetensors files through the `safetensors` library, in the shapes
ComfyUI's helpers return (`comfy.utils.load_torch_file`, `safetensors_header`)."""

from __future__ import annotations

import struct
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file as _save_file


class SafetensorsError(ValueError):
    """The file is not a valid safetensors file."""


def read_header(path: str | Path, max_size: int | None = None) -> bytes | None:
    """The raw JSON header (ComfyUI's `safetensors_header`), or None when it is larger than
    `max_size`. Only the first bytes are read: the header is all that is needed."""
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) != 8:
            raise SafetensorsError(f"{path}: too short to be a safetensors file")
        (length,) = struct.unpack("<Q", raw)
        if max_size is not None and length > max_size:
            return None
        return f.read(length)


def load_file(path: str | Path, device: str | torch.device = "cpu") -> tuple[dict, dict]:
    """Every tensor of the file and its `__metadata__`."""
    try:
        with safe_open(str(path), framework="pt", device=str(device)) as f:
            metadata = f.metadata() or {}
            return {name: f.get_tensor(name) for name in f.keys()}, metadata
    except SafetensorError as exc:
        raise SafetensorsError(f"{path}: {exc}") from None


def save_file(tensors: dict[str, torch.Tensor], path: str | Path, metadata: dict | None = None) -> None:
    """Write `tensors` as a safetensors file (used by `comfy.utils.save_torch_file`)."""
    contiguous = {name: t.detach().contiguous().cpu() for name, t in tensors.items()}
    meta = {str(k): str(v) for k, v in metadata.items()} if metadata else None
    _save_file(contiguous, str(path), metadata=meta)
