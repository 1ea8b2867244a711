"""POST /upload/image and /upload/mask: multipart uploads into input/output/temp, named as
ComfyUI names them; a mask is written into its original image's alpha channel."""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from opencomfy.files.images import ImageError, check_upload_limits, merge_mask
from opencomfy.files.paths import UnsafePath
from opencomfy.files.uploads import parse_flag, store_upload
from opencomfy.http.asset_hooks import record_upload
from opencomfy.http.errors import ApiError, parse_json
from opencomfy.http.files_common import folder_roots, refuse_oversized
from opencomfy.http.identity_files import locate_readable
from opencomfy.http.routing import add_api_routes

# Choosing a free name and writing it must not interleave between two uploads of one name.
UPLOAD_LOCK = web.AppKey("upload_lock", asyncio.Lock)

routes = web.RouteTableDef()


async def _read_form(request: web.Request):
    refuse_oversized(request)
    try:
        form = await request.post()
    except web.HTTPRequestEntityTooLarge:
        raise
    except (ValueError, AssertionError, UnicodeDecodeError, HttpProcessingError) as exc:
        raise ApiError(400, "invalid_form", f"malformed multipart body: {exc}") from None
    image = form.get("image")
    if not isinstance(image, web.FileField):
        raise ApiError(400, "missing_image", "the multipart field 'image' must be a file")
    if not image.filename:
        raise ApiError(400, "missing_filename", "the uploaded file has no name")
    return form, image


def _text_field(form, name: str, default: str = "") -> str:
    value = form.get(name, default)
    if isinstance(value, web.FileField):
        raise ApiError(400, "invalid_form", f"field {name!r} must be text")
    return value


async def _store(request: web.Request, form, image: web.FileField, *, content: bytes | None = None,
                 check_limits: bool = True) -> web.Response:
    folder_type = _text_field(form, "type") or "input"
    subfolder = _text_field(form, "subfolder")
    overwrite = parse_flag(_text_field(form, "overwrite"))
    try:
        root = folder_roots(request).root(folder_type)  # the caller's own folder
        if check_limits:
            await asyncio.to_thread(check_upload_limits, image.file)
        async with request.app[UPLOAD_LOCK]:
            stored = await asyncio.to_thread(
                store_upload, root=root, subfolder=subfolder, filename=image.filename,
                data=image.file, overwrite=overwrite, content=content)
    except (UnsafePath, ImageError) as exc:
        raise ApiError(400, "invalid_upload", str(exc)) from None
    # Uploads are assets too (best effort; never fails the upload).
    await record_upload(request, path=stored.path, root=root, folder_type=folder_type)
    return web.json_response({"name": stored.name, "subfolder": subfolder, "type": folder_type})


@routes.post("/upload/image")
async def upload_image(request: web.Request) -> web.Response:
    """Store an uploaded file; a clashing name gets ` (1)` unless the bytes are identical."""
    form, image = await _read_form(request)
    return await _store(request, form, image)


@routes.post("/upload/mask")
async def upload_mask(request: web.Request) -> web.Response:
    """Store the original image referenced by `original_ref` with the upload's alpha as mask."""
    form, image = await _read_form(request)
    try:
        ref = parse_json(_text_field(form, "original_ref"), what="original_ref")
    except ApiError:  # invalid or too deeply nested (the depth cap keeps it a 400)
        raise ApiError(400, "invalid_original_ref", "original_ref must be a JSON object") from None
    if not isinstance(ref, dict) or not isinstance(ref.get("filename"), str) or not ref["filename"]:
        raise ApiError(400, "invalid_original_ref", "original_ref needs a filename")
    subfolder, ref_type = ref.get("subfolder") or "", ref.get("type") or None
    if not isinstance(subfolder, str) or not (ref_type is None or isinstance(ref_type, str)):
        raise ApiError(400, "invalid_original_ref", "original_ref subfolder and type must be strings")
    try:
        found = await locate_readable(request, filename=ref["filename"], subfolder=subfolder,
                                      folder_type=ref_type, default_type="output")
    except UnsafePath as exc:
        raise ApiError(400, "invalid_original_ref", str(exc)) from None
    if found is None:  # another workspace's image reads the same
        raise ApiError(400, "original_not_found", "the original image does not exist")
    original = found[0]
    try:
        merged = await asyncio.to_thread(merge_mask, original=original, mask=image.file)
    except ImageError as exc:
        raise ApiError(400, "invalid_mask", str(exc)) from None
    return await _store(request, form, image, content=merged, check_limits=False)


def setup(app: web.Application) -> None:
    app[UPLOAD_LOCK] = asyncio.Lock()
    add_api_routes(app, routes)
