"""Error shapes of the spec, and a middleware that turns every failure into one of them.

Cloud routes answer `{"code", "message"}`; ComfyUI routes keep their own shapes, built by
their handlers. Anything unexpected becomes a 500 with no traceback in the body.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)


def error_response(status: int, code: str, message: str, **extra: Any) -> web.Response:
    """The spec's ErrorResponse: `{"code": ..., "message": ...}`."""
    return web.json_response({"code": code, "message": message, **extra}, status=status)


class ApiError(Exception):
    """Raised by handlers to answer with the spec's ErrorResponse shape."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


async def read_json(request: web.Request, *, default: Any = ..., max_bytes: int | None = None) -> Any:
    """Parse the body as JSON or raise a 400 ApiError. An empty body gives `default` when set."""
    raw = await request.read()
    if max_bytes is not None and len(raw) > max_bytes:
        raise ApiError(413, "payload_too_large", "request body too large")
    if not raw.strip():
        if default is not ...:
            return default
        raise ApiError(400, "invalid_json", "request body must be JSON")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "invalid_json", f"request body is not valid JSON: {exc}") from None


@web.middleware
async def error_middleware(request: web.Request, handler):
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.code, exc.message)
    except web.HTTPRequestEntityTooLarge:
        return error_response(413, "payload_too_large", "request body too large")
    except web.HTTPException:
        raise
    except Exception:  # never a traceback on the wire
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal_error", "internal server error")
