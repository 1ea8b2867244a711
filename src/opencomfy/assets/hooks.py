"""Files the server writes become assets: uploads through /api/upload/* and jobs' outputs.

Both hooks are best effort: a failure to record an asset is logged and never breaks the
upload or the job. `record_upload` is called by the upload route; `OutputRecorder` listens
to the bus for `executed` events and records every `type: output` file they name.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from opencomfy.files.workspace_roots import scoped_root

if TYPE_CHECKING:
    from opencomfy.assets.service import AssetService
    from opencomfy.events.base import EventBus

log = logging.getLogger(__name__)
LOCATION_TAGS = {"input": "input", "output": "output", "temp": "temp"}


def _summary(asset: dict) -> dict:
    return {"id": asset["id"], "name": asset["name"], "asset_hash": asset["asset_hash"],
            "size": asset["size"], "mime_type": asset["mime_type"], "tags": asset["tags"]}


async def record_upload(request: web.Request, *, path: Path, root: Path, folder_type: str) -> dict | None:
    """Record an uploaded file as an asset; returns a short summary for the response, or None."""
    from opencomfy.http.routing import SERVICES

    services = request.app.get(SERVICES) if SERVICES in request.app else None
    assets: AssetService | None = getattr(services, "assets", None)
    if assets is None:
        return None
    try:
        name = path.resolve().relative_to(root.resolve()).as_posix()
        from opencomfy.http.caller import caller_of

        asset = await assets.record_file(workspace_id=caller_of(request).workspace_id, path=path,
                                         name=name, tags=[LOCATION_TAGS.get(folder_type, "input")])
    except Exception:
        log.warning("could not record the upload %s as an asset", path, exc_info=True)
        return None
    return _summary(asset)


async def signed_view_url(request: web.Request, path: Path) -> str | None:
    """A signed URL of the stored copy of a file served by /api/view, when the blob store is
    S3 and the file is an unchanged asset of the caller's workspace; else None."""
    from opencomfy.http.caller import caller_of
    from opencomfy.http.routing import SERVICES

    services = request.app.get(SERVICES) if SERVICES in request.app else None
    assets: AssetService | None = getattr(services, "assets", None)
    if assets is None or assets.store.kind != "s3":
        return None
    try:
        return await assets.signed_url_of_file(workspace_id=caller_of(request).workspace_id, path=path)
    except Exception:
        log.warning("could not sign a URL for %s; serving the file", path, exc_info=True)
        return None


class OutputRecorder:
    """Records the files of jobs' `executed` events (type "output") as assets with job_id."""

    def __init__(self, *, bus: "EventBus", assets: "AssetService", output_dir: Path) -> None:
        self.bus, self.assets, self.output_dir = bus, assets, output_dir.resolve()
        self._task: asyncio.Task | None = None
        self._subscription = None

    def start(self) -> None:
        self._subscription = self.bus.subscribe(kinds=["executed"])
        self._task = asyncio.create_task(self._run(), name="asset-output-recorder")

    async def stop(self) -> None:
        if self._subscription is not None:
            self._subscription.close()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        async for msg in self._subscription:
            try:
                await self.record(msg.data, workspace_id=msg.workspace_id, job_id=msg.prompt_id)
            except Exception:
                log.warning("could not record the outputs of job %s as assets", msg.prompt_id, exc_info=True)

    def _output_file(self, item: dict, root: Path) -> Path | None:
        if item.get("type") != "output" or not isinstance(item.get("filename"), str):
            return None
        subfolder = item.get("subfolder") or ""
        if not isinstance(subfolder, str):
            return None
        path = (root / subfolder / item["filename"]).resolve()
        if root not in path.parents or not path.is_file():
            return None
        return path

    async def record(self, data: dict, *, workspace_id: str, job_id: str | None) -> list[dict]:
        """Record the output files named by one `executed` event's `output`."""
        output = data.get("output") if isinstance(data, dict) else None
        recorded = []
        # The job wrote into its workspace's own output folder (per-workspace layout).
        root = scoped_root(self.output_dir, workspace_id)
        for items in (output or {}).values():
            if not isinstance(items, list):
                continue
            for item in items:
                path = self._output_file(item, root) if isinstance(item, dict) else None
                if path is not None:
                    recorded.append(await self.assets.record_file(
                        workspace_id=workspace_id, path=path, tags=["output"], job_id=job_id,
                        name=path.relative_to(root).as_posix()))
        return recorded
