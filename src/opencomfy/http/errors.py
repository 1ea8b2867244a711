"""Error shapes of the spec, and a middleware that turns every failure into one of them.

Cloud routes answer `{"code", "message"}`; ComfyUI routes keep their own shapes, built by
their handlers. Every domain error (opencomfy.errors.DomainError: the assets', identity's,
secrets' ... and ApiError) is answered here, in one place, with its status and code.
Anything unexpected becomes a 500 with no traceback in the body.
"""

from __future__ import annotations

import asyncio
import json
import logging
from array import array
from itertools import accumulate
from typing import Any

from aiohttp import web

from opencomfy.errors import DomainError

log = logging.getLogger(__name__)


def error_response(status: int, code: str, message: str, **extra: Any) -> web.Response:
    """The spec's ErrorResponse: `{"code": ..., "message": ...}`."""
    return web.json_response({"code": code, "message": message, **extra}, status=status)


def domain_error_response(exc: DomainError) -> web.Response:
    """The spec's ErrorResponse for a domain error (with `field` when it names one)."""
    return error_response(exc.status, exc.code, exc.message, **exc.details())


class ApiError(DomainError):
    """Raised by handlers to answer with the spec's ErrorResponse shape."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code = status, code


#: Deepest JSON nesting any route accepts. Real workflows nest a handful of levels; deeper
#: documents would only exhaust the parser's (and later the encoder's) recursion.
MAX_JSON_DEPTH = 256

#: Bodies above this size are parsed on a worker thread, so the event loop keeps serving.
_PARSE_OFF_LOOP_BYTES = 1 << 20

_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'[]{}"')
_DEPTH_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")


def json_too_deep(raw: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether `raw` nests arrays/objects deeper than `limit`, brackets inside strings ignored.

    Runs before json.loads so a hostile document never reaches the recursive parser. Only
    C-level byte operations: escapes are dropped, then everything but quotes and brackets,
    then the inside of strings; the depth is the running sum of +1/-1 per bracket."""
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    structure = raw.replace(b"\\\\", b"").replace(b'\\"', b"").translate(None, _NOT_STRUCTURE)
    outside_strings = b"".join(structure.split(b'"')[::2])
    steps = array("b", outside_strings.translate(_DEPTH_STEPS))
    return max(accumulate(steps), default=0) > limit


def parse_json(raw: bytes | str, *, what: str = "request body") -> Any:
    """json.loads with the depth cap; a 400 ApiError for anything that is not acceptable JSON.
    For JSON carried inside a form field, a query parameter or a websocket message too."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    if json_too_deep(data):
        raise ApiError(400, "invalid_json", f"{what} nests deeper than {MAX_JSON_DEPTH} levels")
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "invalid_json", f"{what} is not valid JSON: {exc}") from None
    except RecursionError:  # the pre-scan was fooled by invalid bytes; still the caller's fault
        raise ApiError(400, "invalid_json", f"{what} nests too deeply") from None


async def read_body(request: web.Request, *, max_bytes: int | None = None) -> bytes:
    """The whole body, refused with 413 before reading when its declared length is too big
    (and while reading when it is sent chunked)."""
    if max_bytes is None:
        return await request.read()
    if request.content_length is not None and request.content_length > max_bytes:
        raise ApiError(413, "payload_too_large", f"request body is over {max_bytes} bytes")
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(1 << 16):
        size += len(chunk)
        if size > max_bytes:
            raise ApiError(413, "payload_too_large", f"request body is over {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: web.Request, *, default: Any = ..., max_bytes: int | None = None) -> Any:
    """Parse the body as JSON or raise a 400 ApiError (413 over `max_bytes`). An empty body
    gives `default` when set. Every JSON route reads its body through here: one depth cap."""
    raw = await read_body(request, max_bytes=max_bytes)
    if not raw.strip():
        if default is not ...:
            return default
        raise ApiError(400, "invalid_json", "request body must be JSON")
    return await parse_json_body(raw)


async def parse_json_body(raw: bytes) -> Any:
    """parse_json, on a worker thread for a big body. json.loads holds the GIL while it runs,
    so this bounds the stall rather than removing it: the byte caps keep it short."""
    if len(raw) > _PARSE_OFF_LOOP_BYTES:
        return await asyncio.to_thread(parse_json, raw)
    return parse_json(raw)


@web.middleware
async def error_middleware(request: web.Request, handler):
    try:
        return await handler(request)
    except DomainError as exc:
        return domain_error_response(exc)
    except web.HTTPRequestEntityTooLarge:
        return error_response(413, "payload_too_large", "request body too large")
    except web.HTTPException:
        raise
    except Exception:  # never a traceback on the wire
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal_error", "internal server error")
