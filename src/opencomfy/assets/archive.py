"""Zip archives of assets: export (a background task) and import (with zip-bomb limits).

An imported zip is checked before anything is kept: no absolute names, no `..`, at most
MAX_ENTRIES entries, a bounded expanded size and compression ratio. Every entry is staged
first; records are created only once all of them extracted, so a bad archive leaves nothing.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import zipfile
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from opencomfy.assets import repository as repo
from opencomfy.assets.errors import BadArchive, InvalidAssetInput
from opencomfy.assets.schemas import normalize_tags
from opencomfy.blobs import BlobNotFound, BlobTooLarge, StagedBlob

if TYPE_CHECKING:
    from opencomfy.assets.service import AssetService
    from opencomfy.tasks.service import TaskContext

MAX_ENTRIES = 1000
MAX_RATIO = 100          # expanded / compressed, for entries over RATIO_FLOOR bytes
RATIO_FLOOR = 1 << 20
NAMING = ("group_by_job_id", "preserve", "asset_id", "group_by_job_time")


def export_name(task_id: str) -> str:
    return f"export-{task_id}.zip"


def export_key(workspace_id: str, name: str) -> str:
    return f"exports/{workspace_id}/{name}"


def check_export_request(body: dict) -> dict:
    """The export payload, validated (400 on a malformed request)."""
    asset_ids, job_ids = body.get("asset_ids") or [], body.get("job_ids") or []
    filters = body.get("job_asset_name_filters") or {}
    naming = body.get("naming_strategy") or "group_by_job_time"
    if not isinstance(asset_ids, list) or not all(isinstance(a, str) for a in asset_ids):
        raise InvalidAssetInput("asset_ids must be a list of ids", field="asset_ids")
    if not isinstance(job_ids, list) or not all(isinstance(j, str) for j in job_ids):
        raise InvalidAssetInput("job_ids must be a list of ids", field="job_ids")
    if not asset_ids and not job_ids:
        raise InvalidAssetInput("give job_ids and/or asset_ids")
    if not isinstance(filters, dict) or not all(isinstance(v, list) and v for v in filters.values()):
        raise InvalidAssetInput("job_asset_name_filters maps job ids to lists of names",
                                field="job_asset_name_filters")
    if naming not in NAMING:
        raise InvalidAssetInput(f"naming_strategy must be one of {', '.join(NAMING)}",
                                field="naming_strategy")
    return {"asset_ids": asset_ids, "job_ids": job_ids, "job_asset_name_filters": filters,
            "naming_strategy": naming}


def _entry_name(row: dict, naming: str, used: set[str]) -> str | None:
    name = PurePosixPath(row["name"].replace("\\", "/")).name or row["id"]
    if naming == "asset_id":
        suffix = PurePosixPath(name).suffix
        path = f"{row['id']}{suffix}"
    elif naming == "group_by_job_id" and row["job_id"]:
        path = f"{row['job_id']}/{name}"
    elif naming == "group_by_job_time" and row["job_id"]:
        stamp = dt.datetime.fromtimestamp(row["created_at"] / 1000, dt.timezone.utc)
        path = f"{stamp.strftime('%Y-%m-%dT%H-%M-%S')}/{name}"
    else:
        path = name
    if path in used:
        if naming == "preserve":
            return None  # first one wins
        stem, suffix = PurePosixPath(path).stem, PurePosixPath(path).suffix
        parent = str(PurePosixPath(path).parent)
        path = f"{'' if parent == '.' else parent + '/'}{stem}_{row['id'][:8]}{suffix}"
    used.add(path)
    return path


async def run_export(ctx: "TaskContext", *, service: "AssetService") -> dict:
    """Build the zip for the task's payload and put it in the store."""
    payload, ws = ctx.payload, ctx.workspace_id
    async with service.db.read() as conn:
        rows = await repo.get_assets(conn, workspace_id=ws, asset_ids=payload["asset_ids"])
        by_job = await repo.assets_of_jobs(conn, workspace_id=ws, job_ids=payload["job_ids"])
    filters = payload["job_asset_name_filters"]
    by_job = [r for r in by_job if r["job_id"] not in filters or r["name"] in filters[r["job_id"]]]
    seen, selected = set(), []
    for row in [*by_job, *rows]:
        if row["id"] not in seen:
            seen.add(row["id"])
            selected.append(row)
    staged = await asyncio.to_thread(service.store.stage)
    used: set[str] = set()
    written = 0
    try:
        archive = zipfile.ZipFile(staged.raw_file, "w", compression=zipfile.ZIP_STORED, allowZip64=True)
        for index, row in enumerate(selected):
            ctx.check_cancelled()
            entry = _entry_name(row, payload["naming_strategy"], used)
            if entry is None:
                continue
            path = Path(row["file_path"]) if row["file_path"] and Path(row["file_path"]).is_file() else None
            with archive.open(zipfile.ZipInfo(entry, date_time=_zip_time(row)), "w", force_zip64=True) as out:
                if path is not None:
                    await asyncio.to_thread(_copy_file, path, out)
                else:
                    try:
                        async for chunk in service.iter_content(row["content_hash"]):
                            await asyncio.to_thread(out.write, chunk)
                    except BlobNotFound:
                        continue
            written += 1
            await ctx.progress((index + 1) / len(selected))
        await asyncio.to_thread(archive.close)
        staged.seal()
        name = export_name(ctx.task_id)
        size = staged.size
        await service.store.put_file(export_key(ws, name), staged.path, content_type="application/zip")
    except BaseException:
        staged.abort()
        raise
    return {"export_name": name, "asset_count": written, "size": size}


def _zip_time(row: dict) -> tuple:
    stamp = dt.datetime.fromtimestamp(max(row["created_at"] / 1000, 315532800), dt.timezone.utc)
    return stamp.timetuple()[:6]


def _copy_file(path, out) -> None:
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            out.write(chunk)


def _check_entry_name(name: str) -> str:
    if not name or "\x00" in name:
        raise BadArchive("an entry has no name")
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":") or "\\" in name:
        raise BadArchive(f"entry {name[:80]!r} has an absolute or Windows path")
    if any(part == ".." for part in name.split("/")):
        raise BadArchive(f"entry {name[:80]!r} climbs out of the archive")
    return name


def check_archive(archive: zipfile.ZipFile, *, max_expanded: int) -> list[zipfile.ZipInfo]:
    """The file entries of a safe archive; BadArchive for traversal or a zip bomb."""
    infos = archive.infolist()
    if len(infos) > MAX_ENTRIES:
        raise BadArchive(f"the archive has more than {MAX_ENTRIES} entries")
    total = 0
    files = []
    for info in infos:
        _check_entry_name(info.filename)
        if info.is_dir():
            continue
        total += info.file_size
        if total > max_expanded:
            raise BadArchive(f"the archive expands to more than {max_expanded} bytes")
        if info.file_size > RATIO_FLOOR and info.file_size > MAX_RATIO * max(info.compress_size, 1):
            raise BadArchive(f"entry {info.filename[:80]!r} is compressed suspiciously well (zip bomb?)")
        files.append(info)
    return files


def _extract(archive: zipfile.ZipFile, info: zipfile.ZipInfo, staged: StagedBlob) -> None:
    # The declared size is a claim, not a fact: the staged blob's limit stops a liar.
    staged.limit = info.file_size
    with archive.open(info) as src:
        while chunk := src.read(1 << 20):
            staged.write(chunk)
    staged.finish()


async def import_zip(*, service: "AssetService", workspace_id: str, archive_blob: StagedBlob,
                     tags: list[str], max_expanded: int) -> list[dict]:
    """Create one asset per file of the archive (all or nothing); returns the records."""
    tags = normalize_tags(tags)
    staged_entries: list[tuple[str, StagedBlob]] = []
    try:
        try:
            archive = await asyncio.to_thread(zipfile.ZipFile, archive_blob.path)
        except (zipfile.BadZipFile, OSError):
            raise BadArchive("the body is not a zip archive") from None
        with archive:
            for info in check_archive(archive, max_expanded=max_expanded):
                staged = await asyncio.to_thread(service.store.stage)
                staged_entries.append((PurePosixPath(info.filename).name, staged))
                try:
                    await asyncio.to_thread(_extract, archive, info, staged)
                except BlobTooLarge:
                    raise BadArchive(f"entry {info.filename[:80]!r} is larger than it declares") from None
                except (zipfile.BadZipFile, ValueError, EOFError, OSError) as exc:
                    raise BadArchive(f"entry {info.filename[:80]!r} is damaged: {exc}") from None
        created: list[dict[str, Any]] = []
        for name, staged in staged_entries:
            asset, _ = await service.create_from_staged(workspace_id=workspace_id, staged=staged,
                                                        name=name, tags=tags)
            created.append(asset)
        return created
    except BaseException:
        for _, staged in staged_entries:
            staged.abort()
        raise
    finally:
        archive_blob.abort()
