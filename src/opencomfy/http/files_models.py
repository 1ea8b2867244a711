"""Model listings: /models, /models/{folder}, /embeddings, /experiment/models[/{folder}],
model preview images and /view_metadata, all from ComfyUI's `folder_paths`."""

from __future__ import annotations

import asyncio

from aiohttp import web

from opencomfy.files import model_listing
from opencomfy.files.paths import UnsafePath
from opencomfy.http.errors import ApiError
from opencomfy.http.routing import add_api_routes

routes = web.RouteTableDef()


def _unknown(folder: str) -> ApiError:
    return ApiError(404, "folder_not_found", f"no model folder named {folder!r}")


@routes.get("/models")
async def list_model_kinds(request: web.Request) -> web.Response:
    """The model folder kinds (`checkpoints`, `loras`, ...)."""
    return web.json_response(model_listing.folder_names())


@routes.get("/models/{folder}")
async def list_models(request: web.Request) -> web.Response:
    """File names of one kind of model, as loader nodes list them."""
    folder = request.match_info["folder"]
    try:
        return web.json_response(await asyncio.to_thread(model_listing.filenames, folder))
    except (model_listing.UnknownFolder, KeyError):
        raise _unknown(folder) from None


@routes.get("/embeddings")
async def list_embeddings(request: web.Request) -> web.Response:
    """Embedding names without extension."""
    return web.json_response(await asyncio.to_thread(model_listing.embedding_names))


@routes.get("/experiment/models")
async def list_model_folders(request: web.Request) -> web.Response:
    """Every model kind with the folders it is read from (the spec's ModelFolder)."""
    return web.json_response(model_listing.model_folders())


@routes.get("/experiment/models/{folder}")
async def list_model_files(request: web.Request) -> web.Response:
    """Every model file of one kind with its folder index, size and times (ModelFile)."""
    folder = request.match_info["folder"]
    try:
        return web.json_response(await asyncio.to_thread(model_listing.model_files, folder))
    except model_listing.UnknownFolder:
        raise _unknown(folder) from None


@routes.get("/experiment/models/preview/{folder}/{path_index}/{filename:.*}")
async def model_preview(request: web.Request) -> web.Response:
    """A model's preview picture as WebP (404 when it has none)."""
    folder, filename = request.match_info["folder"], request.match_info["filename"]
    try:
        path_index = int(request.match_info["path_index"])
        body = await asyncio.to_thread(model_listing.model_preview, folder=folder,
                                       path_index=path_index, filename=filename)
    except (ValueError, UnsafePath, model_listing.UnknownFolder):
        body = None
    if body is None:
        raise ApiError(404, "not_found", "no preview for this model")
    return web.Response(body=body, content_type="image/webp",
                        headers={"Cache-Control": "private, no-cache"})


@routes.get("/view_metadata/{folder}")
async def view_metadata(request: web.Request) -> web.Response:
    """A safetensors model's `__metadata__` (`?filename=`); 404 when it has none."""
    folder, filename = request.match_info["folder"], request.rel_url.query.get("filename", "")
    try:
        metadata = await asyncio.to_thread(model_listing.model_metadata, folder=folder, filename=filename)
    except (UnsafePath, model_listing.UnknownFolder):
        metadata = None
    if metadata is None:
        raise ApiError(404, "not_found", "no metadata for this model")
    return web.json_response(metadata)


def setup(app: web.Application) -> None:
    add_api_routes(app, routes)
