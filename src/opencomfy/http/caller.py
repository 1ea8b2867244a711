"""`caller_of(request)`: the one way a handler learns who is calling and in which workspace.

The auth middleware (http/auth.py) resolves the caller before any handler runs; with
`--auth none` every request is the implicit local user in the workspace "local"."""

from __future__ import annotations

from aiohttp import web

from opencomfy.files.workspace_roots import enter_workspace
from opencomfy.identity.principal import LOCAL_CALLER, Caller

CALLER_KEY = "caller"

__all__ = ["Caller", "caller_of", "set_caller"]


def caller_of(request: web.Request) -> Caller:
    """The resolved caller (the local caller where nothing resolved one)."""
    return request.get(CALLER_KEY) or LOCAL_CALLER


def workspace_of(request: web.Request) -> str:
    """The caller's workspace ("local" with --auth none)."""
    return caller_of(request).workspace_id


def set_caller(request: web.Request, caller: Caller) -> None:
    request[CALLER_KEY] = caller
    # Code this request runs (validation's INPUT_TYPES, custom nodes' routes) finds files
    # through folder_paths in the caller's workspace; the request's own task holds it.
    enter_workspace(caller.workspace_id)
    # Handlers written before the identity layer read these two keys.
    request["workspace_id"] = caller.workspace_id
    request["user_id"] = caller.user_id
