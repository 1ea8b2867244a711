"""Which input, output and temp files a caller reaches, with `--auth required`.

Each workspace has its own sub-folder of each root (files/workspace_roots.py): the file
routes resolve every client path inside the caller's folders, so another workspace's file
is simply not there (404, like any other id of another tenant).

Files stored in the shared roots before the per-workspace layout (legacy files) stay
readable by /view (and the routes that read a file by name) only where the asset records
say the caller's workspace owns them: its uploads (`record_upload`) and its jobs' outputs
(`OutputRecorder`). They are never listed, never overwritten, and jobs no longer load them:
an owner moves them into `<root>/<workspace folder>/` to use them again (docs/identity.md).
With `--auth none` the roots are used as they are and nothing is restricted.
"""

from __future__ import annotations

import os
from pathlib import Path

from aiohttp import web

from opencomfy.files.paths import FolderRoots, UnsafePath, split_annotation
from opencomfy.files.workspace_roots import is_reserved_name
from opencomfy.http.caller import CALLER_KEY
from opencomfy.http.routing import services_of

#: The folder types whose legacy files an asset record may vouch for (temp files are
#: short-lived previews, wiped at every start: never legacy).
_LEGACY_TYPES = ("input", "output")


def per_workspace(request: web.Request) -> bool:
    return services_of(request).config.auth == "required"


def request_workspace(request: web.Request) -> str | None:
    """The caller's workspace; None when no caller was resolved (a public route) with
    `--auth required`, whose folders are then the empty `_unscoped` ones."""
    caller = request.get(CALLER_KEY)
    if caller is not None:
        return caller.workspace_id
    return None if per_workspace(request) else "local"


def roots_of(request: web.Request) -> FolderRoots:
    """The caller's input, output and temp folders."""
    return FolderRoots.for_workspace(services_of(request).config, request_workspace(request))


async def _legacy_file(request: web.Request, *, filename: str, subfolder: str,
                       folder_type: str) -> Path | None:
    """A file of the shared root that the caller's workspace owns by its asset record."""
    workspace_id = request_workspace(request)
    if workspace_id is None or folder_type not in _LEGACY_TYPES:
        return None
    shared = FolderRoots.from_config(services_of(request).config)
    path, _ = shared.locate(filename=filename, subfolder=subfolder, folder_type=folder_type)
    parts = path.relative_to(os.path.realpath(shared.root(folder_type))).parts
    if not parts or is_reserved_name(parts[0]):
        return None  # a workspace's folder is never reached through the shared root
    if not path.is_file() or not await services_of(request).assets.records_file(
            workspace_id=workspace_id, path=path):
        return None
    return path


async def locate_readable(request: web.Request, *, filename: str, subfolder: str = "",
                          folder_type: str | None = None, default_type: str = "output"
                          ) -> tuple[Path, str] | None:
    """Resolve a client's (filename, subfolder, type) to a file the caller may read, and its
    type; None when there is no such file for this caller. Raises UnsafePath for a path
    that is malformed or leaves its folder."""
    path, chosen = roots_of(request).locate(filename=filename, subfolder=subfolder,
                                            folder_type=folder_type, default_type=default_type)
    if path.is_file():
        return path, chosen
    if not per_workspace(request):
        return None
    name, _ = split_annotation(filename)
    legacy = await _legacy_file(request, filename=name, subfolder=subfolder, folder_type=chosen)
    return (legacy, chosen) if legacy is not None else None


__all__ = ["UnsafePath", "locate_readable", "per_workspace", "request_workspace", "roots_of"]
