"""Model file formats: safetensors is allowed, pickle-based checkpoints are not (they run code)."""

from __future__ import annotations

from opencomfy.assets.errors import FormatNotAllowed
from opencomfy.weights import PICKLE_EXTENSIONS

__all__ = ["PICKLE_EXTENSIONS", "check_model_format", "looks_like_pickle", "looks_like_safetensors"]
ALLOWED_MESSAGE = "Allowed formats: [SafeTensor]"


def looks_like_pickle(head: bytes) -> bool:
    """A raw pickle (PROTO opcode) or a torch zip archive (which wraps one)."""
    return (len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5) or head.startswith(b"PK\x03\x04")


def looks_like_safetensors(head: bytes) -> bool:
    """An 8-byte little-endian header length followed by a JSON object."""
    if len(head) < 10:
        return False
    header_len = int.from_bytes(head[:8], "little")
    return 2 <= header_len <= 100 * 1024 * 1024 and head[8:9] == b"{"


def check_model_format(name: str, head: bytes) -> None:
    """Raise FormatNotAllowed unless a model file is safetensors (by name and by content)."""
    lower = name.lower()
    if lower.endswith(PICKLE_EXTENSIONS) or looks_like_pickle(head):
        raise FormatNotAllowed(f'File format "PickleTensor" is not allowed. {ALLOWED_MESSAGE}')
    if lower.endswith(".safetensors") and not looks_like_safetensors(head):
        raise FormatNotAllowed(f'"{name}" is not a valid safetensors file. {ALLOWED_MESSAGE}')
