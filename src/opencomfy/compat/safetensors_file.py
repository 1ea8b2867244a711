"""Read .safetensors files with torch alone (the `safetensors` package is not a dependency).

Format: an 8-byte little-endian header length, a JSON header
``{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}``, then the
raw little-endian tensor bytes, offsets relative to the end of the header.
"""

from __future__ import annotations

import json
import mmap
import struct
from pathlib import Path

import torch

_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
    "U8": torch.uint8, "BOOL": torch.bool,
}
for _name, _attr in (("F8_E4M3", "float8_e4m3fn"), ("F8_E5M2", "float8_e5m2"),
                     ("U16", "uint16"), ("U32", "uint32"), ("U64", "uint64")):
    if hasattr(torch, _attr):
        _DTYPES[_name] = getattr(torch, _attr)


class SafetensorsError(ValueError):
    """The file is not a valid safetensors file."""


def read_header(path: str | Path, max_size: int | None = None) -> bytes | None:
    """The raw JSON header, or None when it is larger than ``max_size``."""
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) != 8:
            raise SafetensorsError(f"{path}: too short to be a safetensors file")
        (length,) = struct.unpack("<Q", raw)
        if max_size is not None and length > max_size:
            return None
        return f.read(length)


def load_file(path: str | Path, device: str | torch.device = "cpu") -> tuple[dict, dict]:
    """Every tensor of the file (copied out of the mapping) and its ``__metadata__``."""
    with open(path, "rb") as f:
        size = Path(path).stat().st_size
        raw = f.read(8)
        if len(raw) != 8:
            raise SafetensorsError(f"{path}: too short to be a safetensors file")
        (length,) = struct.unpack("<Q", raw)
        if length > size - 8:
            raise SafetensorsError(f"{path}: header length {length} exceeds the file")
        try:
            header = json.loads(f.read(length))
        except ValueError as exc:
            raise SafetensorsError(f"{path}: header is not JSON: {exc}") from None
        metadata = header.pop("__metadata__", None) or {}
        data_start = 8 + length
        tensors: dict[str, torch.Tensor] = {}
        if not header:
            return tensors, metadata
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            for name, entry in header.items():
                dtype = _DTYPES.get(entry.get("dtype"))
                if dtype is None:
                    raise SafetensorsError(f"{path}: unsupported dtype {entry.get('dtype')!r}")
                begin, end = entry["data_offsets"]
                if not 0 <= begin <= end <= size - data_start:
                    raise SafetensorsError(f"{path}: tensor {name!r} lies outside the file")
                shape = list(entry["shape"])
                buf = bytearray(mm[data_start + begin:data_start + end])
                if end == begin:
                    tensor = torch.empty(shape, dtype=dtype)
                else:
                    tensor = torch.frombuffer(buf, dtype=dtype).reshape(shape)
                tensors[name] = tensor.to(device) if str(device) != "cpu" else tensor
    return tensors, metadata


_NAMES = {v: k for k, v in _DTYPES.items()}


def save_file(tensors: dict[str, torch.Tensor], path: str | Path, metadata: dict | None = None) -> None:
    """Write ``tensors`` as a safetensors file (used by ``comfy.utils.save_torch_file``)."""
    header: dict = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    offset = 0
    blobs = []
    for name, tensor in tensors.items():
        t = tensor.detach().contiguous().cpu()
        data = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": _NAMES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)  # keep tensor data 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        for data in blobs:
            f.write(data)
