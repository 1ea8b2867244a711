"""/vhs/queryvideo (video facts read with FFmpeg) and /files/mask-layers (the mask editor's
layers of one edit)."""

from __future__ import annotations

import asyncio

from aiohttp import web

from opencomfy.files.mask_layers import NotAMaskLayer, find_mask_layers
from opencomfy.files.media import MediaError, loaded_video, probe_video
from opencomfy.files.paths import UnsafePath
from opencomfy.http.errors import ApiError
from opencomfy.http.files_common import folder_roots
from opencomfy.http.identity_files import locate_readable
from opencomfy.http.routing import add_api_routes

routes = web.RouteTableDef()


def _binding_error(message: str) -> web.Response:
    """The spec's BindingErrorResponse for this route's 400: `{"message": ...}`."""
    return web.json_response({"message": message}, status=400)


def _number(query, name: str, kind: type, default):
    raw = query.get(name, "")
    if raw == "":
        return default
    try:
        value = kind(float(raw)) if kind is int else kind(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number") from None
    if value < 0:
        raise ValueError(f"{name} must not be negative")
    return value


@routes.get("/vhs/queryvideo")
async def query_video(request: web.Request) -> web.Response:
    """Frame count, fps, size and duration of a video in input/output/temp, read from the file
    (`source`), and what Video Helper Suite's loader would load with the given options."""
    query = request.rel_url.query
    filename = query.get("filename", "")
    if not filename:
        return _binding_error("filename is required")
    folder_type = query.get("type") or "input"
    try:
        options = {
            "force_rate": _number(query, "force_rate", float, 0.0),
            "frame_load_cap": _number(query, "frame_load_cap", int, 0),
            "skip_first_frames": _number(query, "skip_first_frames", int, 0),
            "select_every_nth": _number(query, "select_every_nth", int, 1) or 1,
        }
        found = await locate_readable(request, filename=filename,
                                      subfolder=query.get("subfolder", ""),
                                      folder_type=folder_type, default_type="input")
    except (ValueError, UnsafePath) as exc:
        return _binding_error(str(exc))
    if found is None:
        return _binding_error("file not found")  # another workspace's file reads the same
    path = found[0]
    try:
        source = await asyncio.to_thread(probe_video, path)
    except MediaError as exc:
        return _binding_error(str(exc))
    loaded = loaded_video(source, **options)
    return web.json_response({"source": source.as_dict(), "loaded": loaded.as_dict()})


@routes.get("/files/mask-layers")
async def mask_layers(request: web.Request) -> web.Response:
    """The four layer files of the mask edit that `filename` (any one of them) belongs to."""
    filename = request.rel_url.query.get("filename", "")
    input_dir = folder_roots(request).input
    try:
        if not filename:
            raise NotAMaskLayer("filename is required")
        layers = await asyncio.to_thread(find_mask_layers, input_dir=input_dir, filename=filename)
    except (NotAMaskLayer, UnsafePath) as exc:
        raise ApiError(404, "not_found", str(exc)) from None
    return web.json_response(layers)


def setup(app: web.Application) -> None:
    add_api_routes(app, routes)
