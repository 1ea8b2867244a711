"""User routes: /users, /settings, /settings/{id}, /userdata, /userdata/{file} (GET, POST,
DELETE), /userdata/{file}/move/{dest} and /v2/userdata.

Userdata routes answer errors as text/plain (the spec's shape for them); /users and /settings
answer the spec's ErrorResponse. Paths arrive URL-encoded (`workflows%2Fa.json`); aiohttp
decodes them once.
"""

from __future__ import annotations

import asyncio
import mimetypes
from pathlib import Path

from aiohttp import web

from opencomfy.files.paths import UnsafePath
from opencomfy.http.caller import caller_of
from opencomfy.http.errors import ApiError, read_json
from opencomfy.http.files_common import ACTIVE_CONTENT_TYPES, refuse_oversized
from opencomfy.http.routing import add_api_routes, services_of
from opencomfy.userdata import settings as user_settings
from opencomfy.userdata import store
from opencomfy.userdata.users import InvalidUsername, UnknownUser, add_user, load_users, resolve_user, user_root

routes = web.RouteTableDef()


def _text(status: int, message: str) -> web.Response:
    return web.Response(status=status, text=message, content_type="text/plain")


class _TextError(Exception):
    """A userdata failure, answered as text/plain with its status."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def _flag(request: web.Request, name: str, default: bool) -> bool:
    """A "true"/"false" query flag; anything unrecognised keeps the default."""
    value = (request.rel_url.query.get(name) or "").strip().lower()
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    return default


def _config(request: web.Request):
    return services_of(request).config


def _user_root(request: web.Request) -> Path:
    """The caller's folder; raises UnknownUser."""
    config = _config(request)
    if config.auth == "required":  # the signed-in user; the comfy-user header is not trusted
        return user_root(user_dir=config.user_dir, user_id=caller_of(request).user_id)
    user_id = resolve_user(user_dir=config.user_dir, multi_user=config.multi_user,
                           header=request.headers.get("comfy-user"))
    return user_root(user_dir=config.user_dir, user_id=user_id)


def _userdata_root(request: web.Request) -> Path:
    try:
        return _user_root(request)
    except UnknownUser as exc:
        raise _TextError(401, str(exc)) from None


def _settings_root(request: web.Request) -> Path:
    try:
        return _user_root(request)
    except UnknownUser as exc:
        raise ApiError(401, "unknown_user", str(exc)) from None


def _text_errors(handler):
    """Turn domain errors of a userdata handler into text/plain answers."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except _TextError as exc:
            return _text(exc.status, exc.message)

    wrapped.__name__ = handler.__name__
    wrapped.__doc__ = handler.__doc__
    return wrapped


# -- users -----------------------------------------------------------------------------------

@routes.get("/users")
async def get_users(request: web.Request) -> web.Response:
    """Where user data lives; with --multi-user also the users `{id: name}`."""
    config = _config(request)
    if config.multi_user:
        users = await asyncio.to_thread(load_users, config.user_dir)
        return web.json_response({"storage": "server", "migrated": True, "users": users})
    migrated = (config.user_dir / "default").exists()
    return web.json_response({"storage": "server", "migrated": migrated})


@routes.post("/users")
async def create_user(request: web.Request) -> web.Response:
    """Create a user (--multi-user only); answers the new user's id as a JSON string."""
    config = _config(request)
    if not config.multi_user:
        raise ApiError(400, "multi_user_disabled", "users can only be created with --multi-user")
    body = await read_json(request)
    username = body.get("username") if isinstance(body, dict) else None
    if not isinstance(username, str):
        raise ApiError(400, "invalid_username", "body must be {\"username\": \"...\"}")
    try:
        user_id = await asyncio.to_thread(add_user, user_dir=config.user_dir, username=username)
    except InvalidUsername as exc:
        return web.json_response({"error": str(exc), "code": "invalid_username", "message": str(exc)},
                                 status=400)
    return web.json_response(user_id)


# -- settings --------------------------------------------------------------------------------

@routes.get("/settings")
async def get_settings(request: web.Request) -> web.Response:
    """All of the caller's settings."""
    root = _settings_root(request)
    return web.json_response(await asyncio.to_thread(user_settings.read_settings, root))


@routes.post("/settings")
async def post_settings(request: web.Request) -> web.Response:
    """Merge the posted object into the caller's settings; answers the merged settings."""
    root = _settings_root(request)
    refuse_oversized(request)
    changes = await read_json(request)  # JSON, or text/plain holding JSON
    if not isinstance(changes, dict):
        raise ApiError(400, "invalid_settings", "settings must be a JSON object")
    return web.json_response(await asyncio.to_thread(user_settings.update_settings, root, changes))


@routes.get("/settings/{id}")
async def get_setting(request: web.Request) -> web.Response:
    """One setting's value, or null when it is not set (as ComfyUI)."""
    root = _settings_root(request)
    settings = await asyncio.to_thread(user_settings.read_settings, root)
    return web.json_response(settings.get(request.match_info["id"]))


@routes.post("/settings/{id}")
async def post_setting(request: web.Request) -> web.Response:
    """Set one setting to the posted JSON value; answers the stored value."""
    root = _settings_root(request)
    refuse_oversized(request)
    value = await read_json(request)  # JSON, or text/plain holding JSON
    setting_id = request.match_info["id"]
    await asyncio.to_thread(user_settings.update_settings, root, {setting_id: value})
    return web.json_response(value)


# -- userdata files --------------------------------------------------------------------------

@routes.get("/userdata")
@_text_errors
async def list_userdata(request: web.Request) -> web.Response:
    """Files under `dir` (required): relative paths, or FileInfo (`full_info`), or split
    paths (`split`); `recurse` descends. A folder that does not exist lists as empty."""
    directory = request.rel_url.query.get("dir", "")
    if not directory:
        raise _TextError(400, "Directory not provided")
    root = _userdata_root(request)
    try:
        files = await asyncio.to_thread(
            store.list_files, root=root, directory=directory,
            recurse=_flag(request, "recurse", False), full_info=_flag(request, "full_info", False),
            split=_flag(request, "split", False))
    except UnsafePath:
        raise _TextError(400, "Invalid directory") from None
    return web.json_response(files)


@routes.get("/v2/userdata")
@_text_errors
async def list_userdata_v2(request: web.Request) -> web.Response:
    """One level of the user's folder (`path`, default the root): directories then files."""
    root = _userdata_root(request)
    try:
        entries = await asyncio.to_thread(store.list_dir_v2, root=root,
                                          rel=request.rel_url.query.get("path", ""))
    except UnsafePath:
        raise _TextError(400, "Invalid path requested") from None
    except store.UserFileNotFound:
        raise _TextError(404, "Requested path not found") from None
    return web.json_response(entries)


def _file_param(request: web.Request, name: str = "file") -> str:
    value = request.match_info.get(name, "")
    if not value:
        raise _TextError(400, f"missing {name}")
    return value


@routes.get("/userdata/{file}")
@_text_errors
async def get_userdata(request: web.Request) -> web.StreamResponse:
    """A userdata file's bytes, as a download (never rendered in our origin; user.css aside)."""
    root = _userdata_root(request)
    rel = _file_param(request)
    try:
        path = await asyncio.to_thread(store.existing_file, root, rel)
    except UnsafePath:
        raise _TextError(400, "Invalid filename") from None
    except store.UserFileNotFound:
        raise _TextError(404, "File not found") from None
    content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    disposition = "attachment"
    if rel == "user.css":
        content_type, disposition = "text/css", "inline"
    elif content_type in ACTIVE_CONTENT_TYPES or content_type == "image/svg+xml":
        content_type = "application/octet-stream"
    return web.FileResponse(path, headers={"Content-Type": content_type,
                                           "X-Content-Type-Options": "nosniff",
                                           "Content-Disposition": disposition,
                                           "Cache-Control": "no-cache"})


def _written(path: Path, root: Path, full_info: bool) -> web.Response:
    if full_info:
        return web.json_response(store.file_info(path, root))
    return web.json_response(path.relative_to(root).as_posix())


@routes.post("/userdata/{file}")
@_text_errors
async def post_userdata(request: web.Request) -> web.Response:
    """Write the raw body to a userdata file; 409 when `overwrite=false` and it exists."""
    root = _userdata_root(request)
    rel = _file_param(request)
    overwrite, full_info = _flag(request, "overwrite", True), _flag(request, "full_info", False)
    refuse_oversized(request)
    data = await request.read()
    try:
        path = await asyncio.to_thread(store.write_file, root=root, rel=rel, data=data,
                                       overwrite=overwrite)
    except UnsafePath:
        raise _TextError(403, "The requested path is not allowed") from None
    except store.UserFileExists:
        raise _TextError(409, "File already exists") from None
    except OSError:
        raise _TextError(400, "Invalid filename") from None
    return _written(path, root, full_info)


@routes.delete("/userdata/{file}")
@_text_errors
async def delete_userdata(request: web.Request) -> web.Response:
    """Delete a userdata file (204)."""
    root = _userdata_root(request)
    rel = _file_param(request)
    try:
        await asyncio.to_thread(store.delete_file, root=root, rel=rel)
    except (UnsafePath, store.UserFileNotFound):
        # The spec lists only 404 here: a path outside the folder is "not found" too.
        raise _TextError(404, "File not found") from None
    return web.Response(status=204)


@routes.post("/userdata/{file}/move/{dest}")
@_text_errors
async def move_userdata(request: web.Request) -> web.Response:
    """Move or rename a userdata file; 409 when `overwrite=false` and the target exists."""
    root = _userdata_root(request)
    source, dest = _file_param(request), _file_param(request, "dest")
    overwrite, full_info = _flag(request, "overwrite", True), _flag(request, "full_info", False)
    try:
        path = await asyncio.to_thread(store.move_file, root=root, source=source, dest=dest,
                                       overwrite=overwrite)
    except UnsafePath:
        raise _TextError(400, "Invalid path") from None
    except store.UserFileNotFound:
        raise _TextError(404, "Source file not found") from None
    except store.UserFileExists:
        raise _TextError(409, "File already exists") from None
    return _written(path, root, full_info)


def setup(app: web.Application) -> None:
    add_api_routes(app, routes)
