"""Helpers shared by the file routes: the caller's folder roots, safe headers."""

from __future__ import annotations

import mimetypes
from urllib.parse import quote

from aiohttp import web

from opencomfy.files.paths import FolderRoots
from opencomfy.http.identity_files import roots_of
from opencomfy.http.routing import services_of

# Served as downloads, never rendered in our origin: a stored file must not run script there.
ACTIVE_CONTENT_TYPES = frozenset({
    "text/html", "application/xhtml+xml", "application/javascript", "text/javascript",
    "application/x-javascript", "application/ecmascript", "text/ecmascript", "text/css",
    "application/xml", "text/xml", "application/wasm",
})
# An SVG opened directly is a document that can run script: sandbox it, allow only styles.
SVG_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox"
mimetypes.add_type("image/webp", ".webp")
mimetypes.add_type("video/webm", ".webm")
mimetypes.add_type("model/gltf-binary", ".glb")


def folder_roots(request: web.Request) -> FolderRoots:
    """The caller's input/output/temp folders (its workspace's own with `--auth required`)."""
    return roots_of(request)


def content_disposition(name: str, *, attachment: bool = False) -> str:
    """`inline; filename="x.png"` with an RFC 5987 copy for names that are not plain ASCII."""
    base = name.rsplit("/", 1)[-1]
    ascii_name = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in base)
    value = f'{"attachment" if attachment else "inline"}; filename="{ascii_name}"'
    if ascii_name != base:
        value += f"; filename*=UTF-8''{quote(base, safe='')}"
    return value


def safe_file_headers(name: str) -> dict[str, str]:
    """Content-Type and friends for serving a stored file as it is."""
    guessed = mimetypes.guess_type(name)[0] or "application/octet-stream"
    headers = {"X-Content-Type-Options": "nosniff"}
    if guessed in ACTIVE_CONTENT_TYPES:
        headers["Content-Type"] = "application/octet-stream"
        headers["Content-Disposition"] = content_disposition(name, attachment=True)
        return headers
    headers["Content-Type"] = guessed
    headers["Content-Disposition"] = content_disposition(name)
    if guessed == "image/svg+xml":
        headers["Content-Security-Policy"] = SVG_POLICY
    return headers


def refuse_oversized(request: web.Request) -> None:
    """413 at once when the declared body is over --max-upload-size, before reading any of it
    (aiohttp would only notice after reading that much)."""
    limit = services_of(request).config.max_upload_bytes
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
