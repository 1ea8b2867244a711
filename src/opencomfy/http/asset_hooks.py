"""Where the file routes meet the assets: uploads through /api/upload/* become assets, and
/api/view redirects to a signed URL of an asset's stored copy on S3.

Both are best effort: a failure is logged and never breaks the upload or the view. (Jobs'
outputs become assets apart from HTTP, by assets/output_recorder.py.)
"""

from __future__ import annotations

import logging
from pathlib import Path

from aiohttp import web

from opencomfy.http.caller import caller_of
from opencomfy.http.routing import SERVICES

log = logging.getLogger(__name__)
LOCATION_TAGS = {"input": "input", "output": "output", "temp": "temp"}


def _summary(asset: dict) -> dict:
    return {"id": asset["id"], "name": asset["name"], "asset_hash": asset["asset_hash"],
            "size": asset["size"], "mime_type": asset["mime_type"], "tags": asset["tags"]}


async def record_upload(request: web.Request, *, path: Path, root: Path, folder_type: str) -> dict | None:
    """Record an uploaded file as an asset; returns a short summary for the response, or None."""
    if SERVICES not in request.app:  # an app that never started its services
        return None
    assets = request.app[SERVICES].assets
    try:
        name = path.resolve().relative_to(root.resolve()).as_posix()
        asset = await assets.record_file(workspace_id=caller_of(request).workspace_id, path=path,
                                         name=name, tags=[LOCATION_TAGS.get(folder_type, "input")])
    except Exception:
        log.warning("could not record the upload %s as an asset", path, exc_info=True)
        return None
    return _summary(asset)


async def signed_view_url(request: web.Request, path: Path) -> str | None:
    """A signed URL of the stored copy of a file served by /api/view, when the blob store is
    S3 and the file is an unchanged asset of the caller's workspace; else None."""
    if SERVICES not in request.app:
        return None
    assets = request.app[SERVICES].assets
    if assets.store.kind != "s3":
        return None
    try:
        return await assets.signed_url_of_file(workspace_id=caller_of(request).workspace_id, path=path)
    except Exception:
        log.warning("could not sign a URL for %s; serving the file", path, exc_info=True)
        return None
