"""Which input and output files a caller may read or overwrite, with `--auth required`.

Files live in the shared ComfyUI folders; what a workspace owns is what the asset records
say: its uploads (`record_upload`) and its jobs' outputs (`OutputRecorder`). Another
workspace's file answers 404, like any other id of another tenant. Temp previews (random
names, short-lived) and local mode (`--auth none`) are not restricted.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from aiohttp import web

from opencomfy.assets import repository as asset_repo
from opencomfy.files.paths import UnsafePath, confined_path
from opencomfy.http.caller import caller_of
from opencomfy.http.routing import services_of

# A job's output is recorded when the server processes its `executed` event; a client that
# read the same event from its websocket may ask for the file first. Files written this
# recently get a short wait for their record.
FRESH_S = 10.0
WAIT_STEPS, WAIT_STEP_S = 40, 0.05


def _restricted(request: web.Request, folder_type: str) -> bool:
    services = services_of(request)
    return (services.config.auth == "required" and folder_type in ("input", "output")
            and services.assets is not None)


async def _recorded(request: web.Request, path: Path) -> bool:
    workspace_id = caller_of(request).workspace_id
    candidates = {str(path), str(path.resolve())}
    async with services_of(request).db.read() as conn:
        for candidate in candidates:
            if await asset_repo.find_by_file(conn, workspace_id=workspace_id, file_path=candidate):
                return True
    return False


async def may_read(request: web.Request, path: Path, folder_type: str) -> bool:
    """Whether the caller's workspace owns this input/output file (always, in local mode)."""
    if not _restricted(request, folder_type):
        return True
    # Uploads are recorded before their response: only outputs can be asked for early.
    steps = WAIT_STEPS if folder_type == "output" else 1
    for _ in range(steps):
        if await _recorded(request, path):
            return True
        try:
            age = time.time() - path.stat().st_mtime
        except OSError:
            return False
        if age > FRESH_S:
            return False
        await asyncio.sleep(WAIT_STEP_S)
    return False


async def may_overwrite(request: web.Request, *, root: Path, subfolder: str, filename: str,
                        folder_type: str) -> bool:
    """An upload may replace an existing file only when the caller's workspace owns it
    (otherwise it is stored under a new name, as a clash is in ComfyUI)."""
    if not _restricted(request, folder_type) or not isinstance(filename, str):
        return True
    try:
        target = confined_path(root, subfolder, filename)
    except UnsafePath:
        return True  # the upload itself refuses the name
    return not target.exists() or await _recorded(request, target)
