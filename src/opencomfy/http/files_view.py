"""GET /view: a file from input/output/temp, as it is (zero-copy, Range, ETag) or re-rendered
(`channel`, `preview`, `res` thumbnails)."""

from __future__ import annotations

import asyncio
import zlib

from aiohttp import web

from opencomfy.files.images import THUMBNAIL_MAX, THUMBNAIL_MIN, ImageError, Rendition, parse_preview, render
from opencomfy.files.paths import UnsafePath
from opencomfy.files.render_cache import RenderCache
from opencomfy.http.asset_hooks import signed_view_url
from opencomfy.http.errors import ApiError
from opencomfy.http.files_common import content_disposition, safe_file_headers
from opencomfy.http.identity_files import locate_readable
from opencomfy.http.routing import add_api_routes

RENDER_CACHE = web.AppKey("render_cache", RenderCache)
# Files may be replaced under the same name (temp previews, overwritten uploads): let clients
# keep them but revalidate with the ETag each time (a cheap 304).
CACHE_CONTROL = "private, no-cache"
_CHANNELS = {"rgb": "rgb", "a": "a", "alpha": "a", "rgba": None, "": None}

routes = web.RouteTableDef()


def _rendition(query) -> Rendition | None:
    raw_channel = query.get("channel", "").strip().lower()
    if raw_channel not in _CHANNELS:
        raise ApiError(400, "invalid_channel", "channel must be rgb, a or alpha")
    channel = _CHANNELS[raw_channel]
    thumbnail = None
    if query.get("res", "") != "":
        try:
            thumbnail = int(query["res"])
        except ValueError:
            raise ApiError(400, "invalid_res", "res must be an integer") from None
        if not THUMBNAIL_MIN <= thumbnail <= THUMBNAIL_MAX:
            raise ApiError(400, "invalid_res", f"res must be between {THUMBNAIL_MIN} and {THUMBNAIL_MAX}")
    preview_format, quality = None, 90
    if "preview" in query:
        preview_format, quality = parse_preview(query["preview"], channel)
    if thumbnail:
        quality = quality if preview_format else 85
    if not (channel or thumbnail or preview_format):
        return None
    return Rendition(channel=channel, preview_format=preview_format, quality=quality,
                     thumbnail=thumbnail)


@routes.get("/view")
async def view_file(request: web.Request) -> web.StreamResponse:
    """Serve a file of the input, output or temp folder, confined to that folder."""
    query = request.rel_url.query
    filename = query.get("filename", "")
    if not filename:
        raise ApiError(400, "missing_filename", "filename is required")
    rendition = _rendition(query)
    try:
        found = await locate_readable(request, filename=filename,
                                      subfolder=query.get("subfolder", ""),
                                      folder_type=query.get("type") or None)
    except UnsafePath as exc:
        raise ApiError(400, "invalid_path", str(exc)) from None
    try:
        st = found[0].stat() if found is not None else None
    except OSError:
        st = None
    if found is None or st is None:
        raise ApiError(404, "not_found", "file not found")  # another workspace's: 404 too
    path = found[0]
    name = path.name
    if rendition is not None:
        response = await _rendered(request, path, st, rendition)
        if response is not None:
            return response
    # On an S3 blob store, the stored copy is served by the store itself (the spec's 302).
    signed = await signed_view_url(request, path)
    if signed is not None:
        raise web.HTTPFound(signed, headers={"Cache-Control": CACHE_CONTROL, "Vary": "Cookie, Authorization"})
    headers = safe_file_headers(name)
    headers["Cache-Control"] = CACHE_CONTROL
    return web.FileResponse(path, headers=headers)


async def _rendered(request: web.Request, path, st, rendition: Rendition) -> web.Response | None:
    """The re-rendered image (or 304); None when only a preview was asked of a non-image,
    which ComfyUI's clients expect to get as it is."""
    tag = f'"{st.st_mtime_ns:x}-{st.st_size:x}-{zlib.crc32(rendition.key().encode()):x}"'
    headers = {"ETag": tag, "Cache-Control": CACHE_CONTROL, "X-Content-Type-Options": "nosniff",
               "Content-Disposition": content_disposition(path.stem + rendition.extension)}
    wanted = [t.strip().removeprefix("W/") for t in request.headers.get("If-None-Match", "").split(",")]
    if tag in wanted or "*" in wanted:
        return web.Response(status=304, headers=headers)
    cache = request.app.get(RENDER_CACHE)
    key = (str(path), st.st_mtime_ns, st.st_size, rendition.key())
    body = cache.get(key) if cache else None
    if body is None:
        try:
            body = await asyncio.to_thread(render, path, rendition)
        except ImageError as exc:
            if not (rendition.channel or rendition.thumbnail):
                return None
            raise ApiError(400, "not_an_image", str(exc)) from None
        if cache:
            cache.put(key, body)
    return web.Response(body=body, content_type=rendition.media_type, headers=headers)


def setup(app: web.Application) -> None:
    app[RENDER_CACHE] = RenderCache()
    add_api_routes(app, routes)
