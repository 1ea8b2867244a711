"""Jobs' output files become assets: `OutputRecorder` listens to the bus for `executed`
events and records every `type: output` file they name.

Best effort: a failure to record an asset is logged and never breaks the job. (Uploads
become assets in the HTTP layer, http/asset_hooks.py.)
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from opencomfy.files.workspace_roots import scoped_root

if TYPE_CHECKING:
    from opencomfy.assets.service import AssetService
    from opencomfy.events.base import EventBus, Subscription

log = logging.getLogger(__name__)


class OutputRecorder:
    """Records the files of jobs' `executed` events (type "output") as assets with job_id."""

    def __init__(self, *, bus: "EventBus", assets: "AssetService", output_dir: Path) -> None:
        self.bus, self.assets, self.output_dir = bus, assets, output_dir.resolve()
        self._task: asyncio.Task | None = None
        self._subscription = None

    def start(self) -> None:
        self._subscription = subscription = self.bus.subscribe(kinds=["executed"])
        self._task = asyncio.create_task(self._run(subscription), name="asset-output-recorder")

    async def stop(self) -> None:
        if self._subscription is not None:
            self._subscription.close()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self, subscription: "Subscription") -> None:
        async for msg in subscription:
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

    async def record(self, data: dict | bytes, *, workspace_id: str, job_id: str | None) -> list[dict]:
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
