"""Cross-site request refusal for `--auth none`: a page on another site must not drive the
local server through the visitor's browser.

With no credentials to check, the browser's Origin header is the only sign of who is asking.
Every state-changing request (POST, PUT, PATCH, DELETE) and every websocket upgrade whose
Origin names another host:port than the Host it was sent to, or is the opaque `null`, is
refused with 403, as ComfyUI does for a loopback server. Requests without Origin (scripts,
curl, client libraries) pass: browsers always send it on the requests this guards.
`--enable-cors-header ORIGIN` allows that origin too; `--enable-cors-header` alone (`*`)
allows every origin, as ComfyUI's CORS mode does.

With `--auth required` the auth middleware checks Origin for cookie-carried writes instead
(http/auth.py): there, a request without a credential is refused anyway.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from aiohttp import web

from opencomfy.http.errors import error_response

_STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def _host_port(netloc: str, scheme: str) -> tuple[str, int | None] | None:
    """(host, port) of `host[:port]`, the scheme's default port filled in; None if malformed."""
    try:
        parts = urlsplit(f"//{netloc}")
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname:
        return None
    return parts.hostname.lower(), port if port is not None else _DEFAULT_PORTS.get(scheme)


def cross_origin(origin: str, host: str | None) -> bool:
    """Whether `origin` (an Origin header) names another site than `host` (the Host header)."""
    if origin.strip().lower() == "null":
        return True  # sandboxed frames, file:// pages, some redirects: never our own page
    parts = urlsplit(origin.strip())
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not host:
        return True
    theirs = _host_port(parts.netloc, scheme)
    # Host carries no scheme: read it with the Origin's, so `Host: x` matches `http://x:80`.
    ours = _host_port(host, scheme)
    return theirs is None or theirs != ours


def _is_guarded(request: web.Request) -> bool:
    if request.method in _STATE_CHANGING:
        return True
    return request.headers.get("Upgrade", "").lower() == "websocket"


def origin_middlewares(config) -> list:
    """The middleware for `--auth none` (an empty list with `--auth required`)."""
    if config.auth == "required":
        return []
    allowed_everywhere = config.enable_cors_header == "*"
    allowed = {config.enable_cors_header.rstrip("/").lower()} \
        if config.enable_cors_header and not allowed_everywhere else set()

    @web.middleware
    async def refuse_cross_origin(request: web.Request, handler):
        origin = request.headers.get("Origin")
        if (origin is not None and not allowed_everywhere and _is_guarded(request)
                and origin.rstrip("/").lower() not in allowed
                and cross_origin(origin, request.headers.get("Host"))):
            return error_response(403, "cross_origin_refused",
                                  "request from another origin refused (see --enable-cors-header)")
        return await handler(request)

    return [refuse_cross_origin]
