"""ComfyUI's websocket wire format: JSON text messages and binary frames.

Binary frames start with a big-endian uint32 event type:
1 preview (uint32 image type 1=JPEG 2=PNG, then the image), 3 progress text
(optionally uint32-length-prefixed prompt id, then uint32-length-prefixed node id, then
text), 4 preview with metadata (uint32 JSON length, JSON, image).
"""

from __future__ import annotations

import json
import struct
from typing import Any

PREVIEW_IMAGE = 1
TEXT = 3
PREVIEW_IMAGE_WITH_METADATA = 4

_IMAGE_TYPE_CODES = {"JPEG": 1, "PNG": 2}
_MIME_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png"}


def json_frame(kind: str, data: Any) -> str:
    """A text message `{"type": kind, "data": data}`."""
    return _ENCODER.encode({"type": kind, "data": data})


def _json_fallback(value: Any) -> Any:
    # Events may carry tuples, sets or numpy scalars from node code; never fail the send.
    if isinstance(value, (set, frozenset)):
        return list(value)
    item = getattr(value, "item", None)
    if callable(item):
        try:
            return item()
        except Exception:
            pass
    return str(value)


# Built once: json.dumps(..., default=) builds a new encoder for every message.
_ENCODER = json.JSONEncoder(default=_json_fallback)


def status_data(queue_remaining: int, sid: str | None = None) -> dict:
    """The `status` message's data; `sid` only in the one sent on connect."""
    data: dict[str, Any] = {"status": {"exec_info": {"queue_remaining": int(queue_remaining)}}}
    if sid is not None:
        data["sid"] = sid
    return data


def preview_frame(image_format: str, image: bytes) -> bytes:
    """Legacy preview (type 1), for clients that did not negotiate metadata."""
    code = _IMAGE_TYPE_CODES.get(image_format.upper(), 1)
    return struct.pack(">II", PREVIEW_IMAGE, code) + image


def preview_with_metadata_frame(image_format: str, image: bytes, metadata: dict,
                                prompt_id: str | None = None) -> bytes:
    """Preview with metadata (type 4)."""
    node_id = metadata.get("node_id")
    meta = {
        "node_id": node_id,
        "display_node_id": metadata.get("display_node_id", node_id),
        "parent_node_id": metadata.get("parent_node_id"),
        "real_node_id": metadata.get("real_node_id", node_id),
        "prompt_id": metadata.get("prompt_id", prompt_id),
        "image_type": _MIME_TYPES.get(image_format.upper(), "image/jpeg"),
    }
    raw = json.dumps(meta).encode()
    return struct.pack(">II", PREVIEW_IMAGE_WITH_METADATA, len(raw)) + raw + image


def progress_text_frame(node_id: str, text: str, prompt_id: str | None = None, *,
                        with_prompt_id: bool) -> bytes:
    """Progress text (type 3); the prompt id prefix only for clients that negotiated
    `supports_progress_text_metadata`."""
    parts = [struct.pack(">I", TEXT)]
    if with_prompt_id:
        pid = (prompt_id or "").encode()
        parts += [struct.pack(">I", len(pid)), pid]
    node = str(node_id).encode()
    parts += [struct.pack(">I", len(node)), node, str(text).encode()]
    return b"".join(parts)


def binary_frame(event_type: int, payload: bytes) -> bytes:
    """Any other binary event: its type, then the payload as given."""
    return struct.pack(">I", int(event_type)) + bytes(payload)


def websocket_frames(messages: "list[str | bytes]") -> bytes:
    """Messages as consecutive unmasked, uncompressed server-to-client websocket frames
    (RFC 6455 section 5.2): text for str, binary for bytes. Written with one socket write,
    a burst of events costs one system call instead of one each."""
    out = bytearray()
    for message in messages:
        if isinstance(message, str):
            payload, first = message.encode(), 0x81  # FIN + text
        else:
            payload, first = message, 0x82           # FIN + binary
        n = len(payload)
        if n < 126:
            out += struct.pack(">BB", first, n)
        elif n < 65536:
            out += struct.pack(">BBH", first, 126, n)
        else:
            out += struct.pack(">BBQ", first, 127, n)
        out += payload
    return bytes(out)
