"""Asset routes: list, get, upload, from-hash, update, delete, tags, histogram, content.

Handlers parse input and call one AssetService method; its domain errors (AssetError) are
answered in the spec's `{code, message}` shape by the error middleware. The background routes (download, export, seed, ...) live
in `assets_background.py` and are registered first: their fixed paths must win over `{id}`.
"""

from __future__ import annotations

from typing import AsyncIterator

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from opencomfy.assets.errors import ContentTooLarge, InvalidAssetInput
from opencomfy.http import assets_background
from opencomfy.http.assets_params import (ANY_HASH_RE, HASH_RE, asset_query, bool_param, enum_param,
                                          int_param, json_object, page_request,
                                          parse_form_tags)
from opencomfy.http.assets_wire import asset_response
from opencomfy.http.caller import workspace_of
from opencomfy.http.errors import ApiError, parse_json, read_json
from opencomfy.http.routing import add_cloud_routes, services_of

routes = web.RouteTableDef()
ASSET_ID = "{id}"  # any text: a non-UUID id is a 404 in the spec's shape, not the router's
MAX_FORM_FIELD = 64 * 1024


def _assets(request: web.Request):
    return services_of(request).assets


@routes.get("/api/assets")
async def list_assets(request: web.Request) -> web.Response:
    """ListAssetsResponse for the caller's workspace."""
    query, page = asset_query(request), page_request(request)
    return asset_response(request, await _assets(request).page(
        workspace_id=workspace_of(request), query=query, page=page))


async def _iter_part(part: BodyPartReader) -> AsyncIterator[bytes]:
    while chunk := await part.read_chunk(1 << 20):
        yield chunk


async def _read_field(part: BodyPartReader) -> str:
    data = bytearray()
    while chunk := await part.read_chunk(8192):
        data += chunk
        if len(data) > MAX_FORM_FIELD:
            raise InvalidAssetInput(f"form field {part.name!r} is too long", field=part.name)
    try:
        return data.decode()
    except UnicodeDecodeError:
        raise InvalidAssetInput(f"form field {part.name!r} is not UTF-8", field=part.name) from None


@routes.post("/api/assets")
async def upload_asset(request: web.Request) -> web.Response:
    """Create an asset from a multipart upload (201 new content, 200 content already stored)."""
    services = services_of(request)
    limit = services.config.max_upload_bytes
    if request.content_length is not None and request.content_length > limit + MAX_FORM_FIELD:
        raise ContentTooLarge(f"the body is larger than the {limit}-byte limit")
    if not request.content_type.startswith("multipart/"):
        if request.content_type == "application/json":
            return await assets_background.upload_from_url(request)
        return web.json_response({"code": "unsupported_media_type",
                                  "message": "send multipart/form-data with a file field"}, status=415)
    fields: dict[str, list[str]] = {}
    staged, filename = None, None
    try:
        try:
            reader = await request.multipart()
            while (part := await reader.next()) is not None:
                if not isinstance(part, BodyPartReader):
                    raise InvalidAssetInput("nested multipart is not supported")
                if part.name == "file" and staged is None:
                    filename = part.filename
                    staged = await _assets(request).stage_stream(_iter_part(part), limit=limit)
                else:
                    fields.setdefault(part.name or "", []).append(await _read_field(part))
        except (ValueError, AssertionError, HttpProcessingError) as exc:
            # aiohttp raises these for a broken body or a part header it cannot parse
            # (control characters in a field name, say): the client's fault, a 400.
            raise InvalidAssetInput(f"malformed multipart body: {_reason(exc)}") from None
        if staged is None:
            raise InvalidAssetInput("the form needs a file field", field="file")
        name = (fields.get("name") or [filename or ""])[0]
        user_metadata = _metadata_field(fields.get("user_metadata"))
        asset, created_new = await _assets(request).create_from_staged(
            workspace_id=workspace_of(request), staged=staged, name=name,
            tags=parse_form_tags(fields.get("tags", [])),
            mime_type=(fields.get("mime_type") or [None])[0] or None,
            user_metadata=user_metadata, preview_id=(fields.get("preview_id") or [None])[0] or None,
            asset_id=(fields.get("id") or [None])[0] or None)
    except BaseException:
        if staged is not None:
            staged.abort()
        raise
    # 201 either way (the spec lists no other success); created_new tells the two apart.
    return asset_response(request, {**asset, "created_new": created_new}, status=201)


def _reason(exc: Exception) -> str:
    """One printable line about a parse error (aiohttp's messages quote the raw bytes)."""
    text = exc.message if isinstance(exc, HttpProcessingError) else str(exc)
    return " ".join(str(text).split())[:200] or type(exc).__name__


def _metadata_field(values: list[str] | None) -> dict | None:
    if not values or not values[0].strip():
        return None
    try:  # through the depth cap: a deeply nested field is the caller's fault, not a 500
        parsed = parse_json(values[0], what="user_metadata")
    except ApiError:
        parsed = None
    if not isinstance(parsed, dict):
        raise InvalidAssetInput("user_metadata must be a JSON object", field="user_metadata")
    return parsed


@routes.post("/api/assets/from-hash")
async def create_from_hash(request: web.Request) -> web.Response:
    """A new record over content the workspace already has (404 when it has none)."""
    body = json_object(await read_json(request, max_bytes=1 << 20))
    digest = body.get("hash")
    if not isinstance(digest, str) or not ANY_HASH_RE.match(digest):
        raise InvalidAssetInput("hash must look like blake3:<64 hex> or sha256:<64 hex>", field="hash")
    if not isinstance(body.get("tags"), list):
        raise InvalidAssetInput("tags is required: a list of strings", field="tags")
    for key in ("name", "mime_type"):
        if body.get(key) is not None and not isinstance(body[key], str):
            raise InvalidAssetInput(f"{key} must be a string", field=key)
    metadata = body.get("user_metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise InvalidAssetInput("user_metadata must be an object", field="user_metadata")
    asset, created_new = await _assets(request).create_from_hash(
        workspace_id=workspace_of(request), digest=digest, tags=body["tags"], name=body.get("name"),
        mime_type=body.get("mime_type"), user_metadata=metadata)
    return asset_response(request, {**asset, "created_new": created_new}, status=201)


@routes.head("/api/assets/hash/{hash}")
async def check_hash(request: web.Request) -> web.Response:
    """200 when the workspace has content with this hash, else 404 (no body)."""
    digest = request.match_info["hash"]
    if not HASH_RE.match(digest):
        return web.Response(status=400)
    found = await _assets(request).has_hash(workspace_id=workspace_of(request), digest=digest)
    return web.Response(status=200 if found else 404)


@routes.get("/api/assets/tags/refine")
async def tag_histogram(request: web.Request) -> web.Response:
    """AssetTagHistogramResponse over the assets matching the filters."""
    query = asset_query(request)
    limit = int_param(request, "limit", default=100, low=1, high=1000)
    counts = await _assets(request).tag_histogram(workspace_id=workspace_of(request), query=query,
                                                  limit=limit)
    return web.json_response({"tag_counts": counts})


@routes.get("/api/tags")
async def list_tags(request: web.Request) -> web.Response:
    """ListTagsResponse: the workspace's tags with usage counts."""
    order = enum_param(request, "order", ("count_desc", "name_asc"), "count_desc")
    bool_param(request, "include_public", default=True)
    result = await _assets(request).list_tags(
        workspace_id=workspace_of(request), prefix=request.query.get("prefix") or None,
        by_name=order == "name_asc", offset=int_param(request, "offset", default=0, low=0),
        limit=int_param(request, "limit", default=100, low=1, high=1000),
        include_zero=bool_param(request, "include_zero", default=False))
    return web.json_response(result)


@routes.get(f"/api/assets/{ASSET_ID}")
async def get_asset(request: web.Request) -> web.Response:
    return asset_response(request, await _assets(request).get(
        workspace_id=workspace_of(request), asset_id=request.match_info["id"]))


@routes.get(f"/api/assets/{ASSET_ID}/content")
async def asset_content(request: web.Request) -> web.StreamResponse:
    """The asset's bytes: the file itself, or a redirect to a signed URL on an S3 store."""
    asset, path, url = await _assets(request).content(workspace_id=workspace_of(request),
                                                      asset_id=request.match_info["id"])
    if url is not None:
        raise web.HTTPFound(url, headers={"Cache-Control": "private, max-age=300"})
    assert path is not None  # the service gives a local path whenever it gives no URL
    disposition = "inline" if bool_param(request, "inline", default=True) else "attachment"
    safe_name = asset["name"].replace('"', "").replace("\\", "").replace("\r", "").replace("\n", "")
    return web.FileResponse(path, headers={
        "Content-Type": asset.get("mime_type") or "application/octet-stream",
        "Content-Disposition": f'{disposition}; filename="{safe_name}"',
        "X-Content-Type-Options": "nosniff"})


@routes.put(f"/api/assets/{ASSET_ID}")
async def update_asset(request: web.Request) -> web.Response:
    body = json_object(await read_json(request, max_bytes=1 << 20))
    return asset_response(request, await _assets(request).update(
        workspace_id=workspace_of(request), asset_id=request.match_info["id"], changes=body))


@routes.delete(f"/api/assets/{ASSET_ID}")
async def delete_asset(request: web.Request) -> web.Response:
    await _assets(request).delete(workspace_id=workspace_of(request), asset_id=request.match_info["id"])
    return web.Response(status=204)


async def _tag_list(request: web.Request) -> list:
    body = json_object(await read_json(request, max_bytes=1 << 20))
    tags = body.get("tags")
    if not isinstance(tags, list) or not tags:
        raise InvalidAssetInput("tags must be a non-empty list", field="tags")
    return tags


@routes.post(f"/api/assets/{ASSET_ID}/tags")
async def add_tags(request: web.Request) -> web.Response:
    tags = await _tag_list(request)
    return web.json_response(await _assets(request).change_tags(
        workspace_id=workspace_of(request), asset_id=request.match_info["id"], add=tags))


@routes.delete(f"/api/assets/{ASSET_ID}/tags")
async def remove_tags(request: web.Request) -> web.Response:
    tags = await _tag_list(request)
    return web.json_response(await _assets(request).change_tags(
        workspace_id=workspace_of(request), asset_id=request.match_info["id"], remove=tags))


@routes.put(f"/api/assets/{ASSET_ID}/tags")
async def update_tags(request: web.Request) -> web.Response:
    body = json_object(await read_json(request, max_bytes=1 << 20))
    add, remove = body.get("add", []), body.get("remove", [])
    if not isinstance(add, list) or not isinstance(remove, list) or not (add or remove):
        raise InvalidAssetInput("add and/or remove must list at least one tag")
    return web.json_response(await _assets(request).change_tags(
        workspace_id=workspace_of(request), asset_id=request.match_info["id"], add=add, remove=remove))


def setup(app: web.Application) -> None:
    # Fixed paths (download, export, seed, ...) before `{id}`.
    assets_background.setup(app)
    add_cloud_routes(app, routes)
