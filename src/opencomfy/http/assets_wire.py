"""Asset JSON as it leaves the server: the spec gives `preview_url` `format: uri`, so the
relative `/api/assets/{id}/content` the service builds is made absolute for the request.

The origin is the one the client used: the Host header, and the scheme from
X-Forwarded-Proto when a proxy sets it (the auth layer trusts that header the same way for
its own origin and for `Secure` cookies); X-Forwarded-Host is not trusted anywhere, so not
here either.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web


def request_origin(request: web.Request) -> str:
    """`scheme://host[:port]` of this request as the client addressed it."""
    forwarded = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    scheme = forwarded if forwarded in ("http", "https") else request.scheme
    return f"{scheme}://{request.host}"


def _absolute(asset: Any, origin: str) -> Any:
    if isinstance(asset, dict):
        url = asset.get("preview_url")
        if isinstance(url, str) and url.startswith("/"):
            return {**asset, "preview_url": origin + url}
    return asset


def with_absolute_urls(request: web.Request, payload: dict) -> dict:
    """One Asset, or a page of them under `assets`, with absolute preview URLs."""
    origin = request_origin(request)
    if isinstance(payload.get("assets"), list):
        return {**payload, "assets": [_absolute(a, origin) for a in payload["assets"]]}
    return _absolute(payload, origin)


def asset_response(request: web.Request, payload: dict, *, status: int = 200) -> web.Response:
    """A JSON response carrying Asset objects (see with_absolute_urls)."""
    return web.json_response(with_absolute_urls(request, payload), status=status)
