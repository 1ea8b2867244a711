"""Seeding (scan the models, input and output folders into assets) and pruning.

Files stay where they are: a seeded record points at its file (`file_path`) and its content
row is not in the blob store. Seeding skips files already registered with the same size and
mtime; prune tags records whose file has gone (and whose bytes are not in the store) `missing`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from opencomfy.assets import repository as repo
from opencomfy.assets.errors import InvalidAssetInput
from opencomfy.assets.service import now_ms
from opencomfy.files.workspace_roots import scoped_root

if TYPE_CHECKING:
    from opencomfy.assets.service import AssetService
    from opencomfy.config import Config
    from opencomfy.tasks.service import TaskContext

ROOTS = ("models", "input", "output")
SEED_TASK = "asset_seed"


def check_roots(roots) -> list[str]:
    if roots is None:
        return list(ROOTS)
    if not isinstance(roots, list) or not roots or any(r not in ROOTS for r in roots):
        raise InvalidAssetInput(f"roots must list some of {', '.join(ROOTS)}", field="roots")
    return list(dict.fromkeys(roots))


def _root_dir(config: "Config", root: str, workspace_id: str) -> Path:
    """The folder to scan; with `--auth required` a workspace scans only its own input and
    output folders (never another workspace's files)."""
    if root == "models":
        return config.models_dir
    base = config.input_dir if root == "input" else config.output_dir
    return scoped_root(base, workspace_id, enabled=config.auth == "required")


def _walk(root: Path) -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        found += [Path(dirpath) / f for f in filenames if not f.startswith(".")]
    return found


def tags_for(root: str, path: Path, base: Path) -> list[str]:
    """System tags: the root, and for models the model folder (`checkpoints`, `loras`, ...)."""
    tags = [root]
    rel = path.relative_to(base).parts
    if root == "models" and len(rel) > 1:
        tags.append(rel[0].lower())
    return tags


async def run_seed(ctx: "TaskContext", *, service: "AssetService", config: "Config") -> dict:
    """Register every not-yet-known file under the task's roots."""
    import asyncio

    async with service.db.read() as conn:
        known = {r["file_path"]: r for r in await repo.records_with_files(conn, workspace_id=ctx.workspace_id)}
    files: list[tuple[str, Path, Path]] = []
    for root in ctx.payload["roots"]:
        base = _root_dir(config, root, ctx.workspace_id)
        if base.is_dir():
            files += [(root, base, p) for p in await asyncio.to_thread(_walk, base)]
    added = skipped = 0
    for index, (root, base, path) in enumerate(files):
        ctx.check_cancelled()  # a cancelled scan ends as a failed task, reason "cancelled"
        record = known.get(str(path))
        try:
            stat = path.stat()
        except OSError:
            continue
        if record and record["file_mtime_ns"] == stat.st_mtime_ns and record["size"] == stat.st_size:
            skipped += 1
        else:
            await service.register_file(workspace_id=ctx.workspace_id, path=path,
                                        name=path.relative_to(base).as_posix(),
                                        tags=tags_for(root, path, base))
            added += 1
        await ctx.progress((index + 1) / len(files),
                           details={"scanned": index + 1, "total": len(files), "added": added})
    return {"status": "completed", "scanned": len(files), "total": len(files), "added": added,
            "skipped": skipped}


async def prune(*, service: "AssetService", workspace_id: str) -> int:
    """Tag records whose file is gone (and not in the store) `missing`; returns how many."""
    async with service.db.read() as conn:
        records = await repo.records_with_files(conn, workspace_id=workspace_id)
        stored = {}
        for r in records:
            if r["content_hash"] not in stored:
                content = await repo.get_content(conn, r["content_hash"])
                stored[r["content_hash"]] = bool(content and content["in_store"])
    marked = 0
    async with service.db.write() as conn:
        for r in records:
            gone = not Path(r["file_path"]).is_file() and not stored[r["content_hash"]]
            if gone and not r["is_missing"]:
                marked += 1
                await repo.update_asset(conn, workspace_id=workspace_id, asset_id=r["id"],
                                        values={"is_missing": True, "updated_at": now_ms()})
                await repo.add_tags(conn, workspace_id=workspace_id, asset_id=r["id"],
                                    tags=["missing"], origin="system")
            elif not gone and r["is_missing"]:
                await repo.update_asset(conn, workspace_id=workspace_id, asset_id=r["id"],
                                        values={"is_missing": False, "updated_at": now_ms()})
                await repo.remove_tags(conn, workspace_id=workspace_id, asset_id=r["id"], tags=["missing"])
    return marked
