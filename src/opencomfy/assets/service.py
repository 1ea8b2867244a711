"""`AssetService`: create, find, change and delete asset records over one blob store.

Content is addressed by its blake3 digest and stored once (`content_key`); records are
per workspace. Bytes arrive staged on local disk (`StagedBlob`, hashed while written), then
move into the store unless that content is already there.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any, AsyncIterator, Sequence

from opencomfy.assets import repository as repo
from opencomfy.assets.errors import (AssetImmutable, AssetInUse, AssetNotFound, ContentNotFound,
                                     ContentTooLarge, InvalidAssetInput, ReservedTag)
from opencomfy.assets.formats import check_model_format
from opencomfy.assets.schemas import (RESERVED_TAGS, AssetQuery, PageRequest, asset_to_wire,
                                      encode_cursor, guess_mime, normalize_tags)
from opencomfy.blobs import BlobStore, BlobTooLarge, StagedBlob, content_key
from opencomfy.blobs.base import hash_file
from opencomfy.db.database import Database
from opencomfy.identity.scoped_ids import scoped_id

WRITE_BATCH = 1 << 20  # hand bytes to the writer thread in ~1 MB batches
MAX_NAME = 512


def now_ms() -> int:
    return int(time.time() * 1000)


def _check_uuid(value: str, field: str) -> str:
    try:
        return str(uuid.UUID(value))
    except (ValueError, TypeError, AttributeError):
        raise InvalidAssetInput(f"{field} must be a UUID", field=field) from None


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME or "\x00" in name:
        raise InvalidAssetInput("name must be a non-empty string of at most 512 characters", field="name")
    return name.strip()


class AssetService:
    """Assets of every workspace; each public method takes the caller's `workspace_id`."""

    def __init__(self, *, db: Database, store: BlobStore) -> None:
        self.db = db
        self.store = store

    async def open(self) -> None:
        await self.store.open()

    async def close(self) -> None:
        await self.store.close()

    # -- bytes in ---------------------------------------------------------------------------

    async def stage_stream(self, chunks: AsyncIterator[bytes], *, limit: int | None) -> StagedBlob:
        """Write a stream into a staged file, hashing as it goes (in a worker thread)."""
        staged = await asyncio.to_thread(self.store.stage, limit=limit)
        pending: list[bytes] = []
        pending_size = 0
        try:
            async for chunk in chunks:
                pending.append(chunk)
                pending_size += len(chunk)
                if pending_size >= WRITE_BATCH:
                    await asyncio.to_thread(staged.write, b"".join(pending))
                    pending, pending_size = [], 0
            if pending:
                await asyncio.to_thread(staged.write, b"".join(pending))
            await asyncio.to_thread(staged.finish)
        except BlobTooLarge as exc:
            staged.abort()
            raise ContentTooLarge(str(exc)) from None
        except BaseException:
            staged.abort()
            raise
        return staged

    async def store_staged(self, staged: StagedBlob, *, mime_type: str | None,
                           source_url: str | None = None) -> tuple[str, bool]:
        """Move staged bytes into the store (unless already there); (digest, content was new)."""
        digest = staged.digest
        async with self.db.read() as conn:
            content = await repo.get_content(conn, digest)
        if content is not None and content["in_store"] and await self.store.exists(content_key(digest)):
            staged.abort()
        else:
            try:
                await self.store.put_file(content_key(digest), staged.path, content_type=mime_type)
            except BaseException:
                staged.abort()
                raise
        async with self.db.write() as conn:
            await repo.ensure_content(conn, content_hash=digest, size=staged.size, mime_type=mime_type,
                                      in_store=True, source_url=source_url, now=now_ms())
        return digest, content is None

    async def create_from_staged(self, *, workspace_id: str, staged: StagedBlob, name: str,
                                 tags: Sequence[str], mime_type: str | None = None,
                                 user_metadata: dict | None = None, preview_id: str | None = None,
                                 asset_id: str | None = None, job_id: str | None = None,
                                 system_metadata: dict | None = None, source_url: str | None = None,
                                 immutable: bool = False) -> tuple[dict, bool]:
        """A record for uploaded bytes; (Asset, created_new). created_new is False when this
        workspace already had this content (the record then reuses it) or the id exists.
        Content other workspaces stored is shared too, but never changes this answer."""
        try:
            name = _check_name(name)
            tags = normalize_tags(list(tags))
            if asset_id is not None:
                # A chosen id is named inside its workspace (identity/scoped_ids.py), so another
                # workspace's record never changes this answer (no existence oracle, no 500).
                asset_id = scoped_id(workspace_id, _check_uuid(asset_id, "id"))
                existing = await self._find_by_id(workspace_id, asset_id)
                if existing is not None:
                    staged.abort()
                    return existing, False
                if await self._id_taken(asset_id):  # only a local id reused after --auth required
                    raise InvalidAssetInput("this id cannot be used", field="id")
            if preview_id is not None:
                preview_id = _check_uuid(preview_id, "preview_id")
            if "models" in tags:
                check_model_format(name, staged.head)
        except BaseException:
            staged.abort()
            raise
        mime_type = mime_type or guess_mime(name)
        digest, _ = await self.store_staged(staged, mime_type=mime_type, source_url=source_url)
        async with self.db.read() as conn:
            had_content = await repo.find_asset(conn, workspace_id=workspace_id,
                                                content_hash=digest) is not None
        row = await self.insert_record(workspace_id=workspace_id, digest=digest, size=staged.size,
                                        name=name, tags=tags, mime_type=mime_type,
                                        user_metadata=user_metadata, preview_id=preview_id,
                                        asset_id=asset_id, job_id=job_id,
                                        system_metadata=system_metadata, immutable=immutable)
        return row, not had_content

    async def _id_taken(self, asset_id: str) -> bool:
        async with self.db.read() as conn:
            return await repo.asset_id_exists(conn, asset_id)

    async def _find_by_id(self, workspace_id: str, asset_id: str) -> dict | None:
        async with self.db.read() as conn:
            row = await repo.get_asset(conn, workspace_id=workspace_id, asset_id=asset_id)
            if row is None:
                return None
            return asset_to_wire(row, (await repo.tags_of(conn, [asset_id]))[asset_id])

    async def insert_record(self, *, workspace_id: str, digest: str, size: int, name: str,
                             tags: Sequence[str], mime_type: str | None, user_metadata: dict | None,
                             preview_id: str | None, asset_id: str | None = None,
                             job_id: str | None = None, system_metadata: dict | None = None,
                             file_path: str | None = None, file_mtime_ns: int | None = None,
                             immutable: bool = False, reuse_same_name: bool = True) -> dict:
        """Insert a record (or return the workspace's record of this content and name)."""
        now = now_ms()
        async with self.db.write() as conn:
            if reuse_same_name:
                existing = await repo.find_asset(conn, workspace_id=workspace_id, content_hash=digest,
                                                 name=name)
                if existing is not None:
                    return asset_to_wire(existing, (await repo.tags_of(conn, [existing["id"]]))[existing["id"]])
            row = {"id": asset_id or str(uuid.uuid4()), "workspace_id": workspace_id,
                   "content_hash": digest, "name": name, "mime_type": mime_type, "size": size,
                   "user_metadata": user_metadata or {}, "system_metadata": system_metadata or {},
                   "job_id": job_id, "preview_id": preview_id, "file_path": file_path,
                   "file_mtime_ns": file_mtime_ns, "is_immutable": immutable, "is_missing": False,
                   "created_at": now, "updated_at": now, "last_access_time": now}
            tag_origins = {t: ("system" if t in RESERVED_TAGS else "user") for t in tags}
            await repo.insert_asset(conn, row, tag_origins)
        return asset_to_wire(row, list(tags))

    async def create_from_hash(self, *, workspace_id: str, digest: str, tags: Sequence[str],
                               name: str | None = None, mime_type: str | None = None,
                               user_metadata: dict | None = None) -> tuple[dict, bool]:
        """A new record over content this workspace already has; ContentNotFound otherwise."""
        tags = normalize_tags(list(tags))
        if not tags:
            raise InvalidAssetInput("tags must name at least one tag", field="tags")
        async with self.db.read() as conn:
            source = (await repo.find_asset(conn, workspace_id=workspace_id, content_hash=digest)
                      if digest.startswith("blake3:") else None)
        if source is None:
            raise ContentNotFound(f"no asset with hash {digest}")
        name = _check_name(name) if name is not None else source["name"]
        async with self.db.read() as conn:
            same = await repo.find_asset(conn, workspace_id=workspace_id, content_hash=digest, name=name)
        row = await self.insert_record(
            workspace_id=workspace_id, digest=digest, size=source["size"], name=name, tags=tags,
            mime_type=mime_type or source["mime_type"], user_metadata=user_metadata,
            preview_id=None, file_path=source["file_path"], file_mtime_ns=source["file_mtime_ns"])
        return row, same is None

    async def from_source_url(self, *, workspace_id: str, url: str) -> dict | None:
        """The workspace's own record of a download from `url`, or None.

        Never a new record over content another workspace downloaded: answering that at once
        would tell this workspace what the other fetched. A workspace without a record of the
        URL downloads it itself (the store still keeps one copy of the bytes)."""
        async with self.db.read() as conn:
            mine = await repo.downloaded_from(conn, workspace_id=workspace_id, url=url)
            if mine is None:
                return None
            return asset_to_wire(mine, (await repo.tags_of(conn, [mine["id"]]))[mine["id"]])

    async def register_file(self, *, workspace_id: str, path: Path, name: str, tags: Sequence[str],
                            job_id: str | None = None, copy_to_store: bool = False,
                            system_metadata: dict | None = None) -> dict:
        """A record for a file on local disk (seeded folders, job outputs, uploads).

        The file stays where it is; with `copy_to_store` (an S3 store) its bytes are also put
        in the store so that they can be served from there.
        """
        stat = await asyncio.to_thread(path.stat)
        mime_type = guess_mime(name)
        in_store = False
        if copy_to_store:
            # One pass: the copy into the staging file hashes as it goes.
            staged = await asyncio.to_thread(self.store.stage)
            try:
                await asyncio.to_thread(_copy_into, path, staged)
            except BaseException:
                staged.abort()
                raise
            digest, size = staged.digest, staged.size
            await self.store_staged(staged, mime_type=mime_type)
            in_store = True
        else:
            digest, size = await asyncio.to_thread(hash_file, path)
        async with self.db.write() as conn:
            await repo.ensure_content(conn, content_hash=digest, size=size, mime_type=mime_type,
                                      in_store=in_store, source_url=None, now=now_ms())
        return await self.insert_record(
            workspace_id=workspace_id, digest=digest, size=size, name=name, tags=tags,
            mime_type=mime_type, user_metadata=None, preview_id=None, job_id=job_id,
            system_metadata=system_metadata, file_path=str(path), file_mtime_ns=stat.st_mtime_ns,
            reuse_same_name=False)

    async def record_file(self, *, workspace_id: str, path: Path, name: str, tags: Sequence[str],
                          job_id: str | None = None) -> dict:
        """The record of a file the server wrote (an upload, a job's output): created once,
        refreshed when the file changed since. On an S3 store the bytes are copied there."""
        stat = await asyncio.to_thread(path.stat)
        async with self.db.read() as conn:
            existing = await repo.find_by_file(conn, workspace_id=workspace_id, file_path=str(path))
            if existing is not None and existing["file_mtime_ns"] == stat.st_mtime_ns \
                    and existing["size"] == stat.st_size:
                return asset_to_wire(existing, (await repo.tags_of(conn, [existing["id"]]))[existing["id"]])
        if existing is not None:
            # Overwritten in place: the record follows the file's new content.
            async with self.db.write() as conn:
                drop_blob = await _delete_record(conn, existing)
            if drop_blob:
                await self.store.delete(drop_blob)
        return await self.register_file(workspace_id=workspace_id, path=path, name=name, tags=tags,
                                        job_id=job_id, copy_to_store=self.store.kind != "local")

    # -- reads ------------------------------------------------------------------------------

    async def get(self, *, workspace_id: str, asset_id: str) -> dict:
        found = await self._find_by_id(workspace_id, _check_uuid_or_404(asset_id))
        if found is None:
            raise AssetNotFound("asset not found")
        return found

    async def page(self, *, workspace_id: str, query: AssetQuery, page: PageRequest) -> dict:
        """ListAssetsResponse: a page, the total, has_more and a cursor for the next page."""
        async with self.db.read() as conn:
            rows, total = await repo.page_assets(conn, workspace_id=workspace_id, query=query, page=page)
            has_more = len(rows) > page.limit
            rows = rows[: page.limit]
            tags = await repo.tags_of(conn, [r["id"] for r in rows])
        out: dict[str, Any] = {"assets": [asset_to_wire(r, tags[r["id"]]) for r in rows],
                               "total": total, "has_more": has_more}
        if has_more and rows and page.sort in ("name", "created_at", "updated_at", "size"):
            last = rows[-1]
            out["next_cursor"] = encode_cursor(page.sort, last[page.sort], last["id"])
        return out

    async def has_hash(self, *, workspace_id: str, digest: str) -> bool:
        async with self.db.read() as conn:
            return await repo.find_asset(conn, workspace_id=workspace_id, content_hash=digest) is not None

    async def tag_histogram(self, *, workspace_id: str, query: AssetQuery, limit: int) -> dict[str, int]:
        async with self.db.read() as conn:
            return await repo.tag_histogram(conn, workspace_id=workspace_id, query=query, limit=limit)

    async def list_tags(self, *, workspace_id: str, prefix: str | None, by_name: bool, offset: int,
                        limit: int, include_zero: bool) -> dict:
        """ListTagsResponse: the workspace's tags with their counts."""
        async with self.db.read() as conn:
            rows, total = await repo.tag_counts(conn, workspace_id=workspace_id, prefix=prefix,
                                                by_name=by_name, offset=offset, limit=limit)
        tags = [{"name": t, "count": n} for t, n in rows]
        if include_zero and len(tags) < limit:
            # The system tags exist even before any asset carries them.
            present = {t for t, _ in rows}
            zero = [t for t in sorted(RESERVED_TAGS) if t not in present
                    and (not prefix or t.startswith(prefix.lower()))]
            tags += [{"name": t, "count": 0} for t in zero[: limit - len(tags)]]
            total += len(zero)
        return {"tags": tags, "total": total, "has_more": offset + len(rows) < total}

    async def content(self, *, workspace_id: str, asset_id: str) -> tuple[dict, Path | None, str | None]:
        """Where to read an asset's bytes: (asset, local file or None, signed URL or None)."""
        asset = await self.get(workspace_id=workspace_id, asset_id=asset_id)
        async with self.db.read() as conn:
            row = await repo.get_asset(conn, workspace_id=workspace_id, asset_id=asset["id"])
            if row is None:  # deleted since the get above
                raise AssetNotFound("asset not found")
            content = await repo.get_content(conn, row["content_hash"])
        async with self.db.write() as conn:
            await repo.update_asset(conn, workspace_id=workspace_id, asset_id=row["id"],
                                    values={"last_access_time": now_ms()})
        if row["file_path"] and Path(row["file_path"]).is_file():
            return asset, Path(row["file_path"]), None
        if content and content["in_store"]:
            key = content_key(row["content_hash"])
            local = self.store.local_path(key)
            if local is not None:
                return asset, local, None
            url = await self.store.signed_url(key, filename=row["name"], content_type=row["mime_type"])
            if url:
                return asset, None, url
        raise ContentNotFound("the asset's content is missing")

    async def records_file(self, *, workspace_id: str, path: Path) -> bool:
        """Whether a record of the workspace names this file (as given, or resolved): what
        vouches for a legacy file of the shared folders (http/identity_files.py)."""
        async with self.db.read() as conn:
            for candidate in {str(path), str(path.resolve())}:
                if await repo.find_by_file(conn, workspace_id=workspace_id, file_path=candidate):
                    return True
        return False

    async def signed_url_of_file(self, *, workspace_id: str, path: Path) -> str | None:
        """A signed URL of the stored copy of a local file that is a record of the workspace
        (None when there is no record, the file changed since, or the store cannot sign)."""
        stat = await asyncio.to_thread(path.stat)
        async with self.db.read() as conn:
            row = await repo.find_by_file(conn, workspace_id=workspace_id, file_path=str(path))
            content = await repo.get_content(conn, row["content_hash"]) if row else None
        if row is None or not content or not content["in_store"] or row["file_mtime_ns"] != stat.st_mtime_ns:
            return None
        return await self.store.signed_url(content_key(row["content_hash"]), filename=path.name,
                                           content_type=row["mime_type"])

    def iter_content(self, digest: str) -> AsyncIterator[bytes]:
        """The stored bytes of a content (for exports); BlobNotFound when absent."""
        return self.store.iter_bytes(content_key(digest))

    # -- changes ----------------------------------------------------------------------------

    async def update(self, *, workspace_id: str, asset_id: str, changes: dict[str, Any]) -> dict:
        """AssetUpdated: change name, mime_type, preview_id or user_metadata."""
        values: dict[str, Any] = {}
        if "name" in changes:
            values["name"] = _check_name(changes["name"])
        if "mime_type" in changes:
            if not isinstance(changes["mime_type"], str) or len(changes["mime_type"]) > 255:
                raise InvalidAssetInput("mime_type must be a string", field="mime_type")
            values["mime_type"] = changes["mime_type"]
        if "preview_id" in changes:
            values["preview_id"] = (None if changes["preview_id"] is None
                                    else _check_uuid(changes["preview_id"], "preview_id"))
        if "user_metadata" in changes:
            if not isinstance(changes["user_metadata"], dict):
                raise InvalidAssetInput("user_metadata must be an object", field="user_metadata")
            values["user_metadata"] = changes["user_metadata"]
        if not values:
            raise InvalidAssetInput("provide at least one of name, mime_type, preview_id, user_metadata")
        asset_id = _check_uuid_or_404(asset_id)
        async with self.db.write() as conn:
            row = await repo.get_asset(conn, workspace_id=workspace_id, asset_id=asset_id)
            if row is None:
                raise AssetNotFound("asset not found")
            if row["is_immutable"]:
                raise AssetImmutable("this asset is immutable")
            preview_id = values.get("preview_id")
            if preview_id and not await repo.get_asset(conn, workspace_id=workspace_id,
                                                       asset_id=preview_id):
                raise InvalidAssetInput("preview_id names no asset", field="preview_id")
            values["updated_at"] = now_ms()
            await repo.update_asset(conn, workspace_id=workspace_id, asset_id=asset_id, values=values)
            row.update(values)
            tags = (await repo.tags_of(conn, [asset_id]))[asset_id]
        wire = asset_to_wire(row, tags)
        return {k: wire[k] for k in ("id", "name", "display_name", "asset_hash", "mime_type", "tags",
                                     "user_metadata", "updated_at")}

    async def delete(self, *, workspace_id: str, asset_id: str) -> None:
        """Delete a record; its content goes too once no record of any workspace uses it."""
        asset_id = _check_uuid_or_404(asset_id)
        async with self.db.write() as conn:
            row = await repo.get_asset(conn, workspace_id=workspace_id, asset_id=asset_id)
            if row is None:
                raise AssetNotFound("asset not found")
            if row["is_immutable"]:
                raise AssetImmutable("this asset is immutable")
            if await repo.count_preview_refs(conn, workspace_id=workspace_id, asset_id=asset_id):
                raise AssetInUse("another asset uses this asset as its preview")
            drop_blob = await _delete_record(conn, row)
        if drop_blob:
            await self.store.delete(drop_blob)

    async def change_tags(self, *, workspace_id: str, asset_id: str, add: Sequence[str] = (),
                          remove: Sequence[str] = ()) -> dict:
        """TagsModificationResponse for adding and/or removing user tags."""
        add = normalize_tags(list(add), field_name="add")
        remove = normalize_tags(list(remove), field_name="remove")
        for tag in (*add, *remove):
            if tag in RESERVED_TAGS:
                raise ReservedTag(f"{tag!r} is a system tag and cannot be changed", field="tags")
        asset_id = _check_uuid_or_404(asset_id)
        async with self.db.write() as conn:
            row = await repo.get_asset(conn, workspace_id=workspace_id, asset_id=asset_id)
            if row is None:
                raise AssetNotFound("asset not found")
            current = set((await repo.tags_of(conn, [asset_id]))[asset_id])
            added = [t for t in add if t not in current]
            already = [t for t in add if t in current]
            after_add = current | set(added)
            removed = [t for t in remove if t in after_add]
            not_present = [t for t in remove if t not in after_add]
            await repo.add_tags(conn, workspace_id=workspace_id, asset_id=asset_id, tags=added, origin="user")
            await repo.remove_tags(conn, workspace_id=workspace_id, asset_id=asset_id, tags=removed)
            if added or removed:
                await repo.update_asset(conn, workspace_id=workspace_id, asset_id=asset_id,
                                        values={"updated_at": now_ms()})
        out: dict[str, Any] = {"total_tags": sorted(after_add - set(removed))}
        if add:
            out.update(added=added, already_present=already)
        if remove:
            out.update(removed=removed, not_present=not_present)
        return out


async def _delete_record(conn, row: dict) -> str | None:
    """Delete a record; its content row goes too once no record of any workspace uses it.
    Returns the blob key to delete from the store after the commit, if any."""
    await repo.delete_asset(conn, workspace_id=row["workspace_id"], asset_id=row["id"])
    if await repo.count_content_refs(conn, row["content_hash"]) == 0:
        content = await repo.get_content(conn, row["content_hash"])
        await repo.delete_content(conn, row["content_hash"])
        if content and content["in_store"]:
            return content_key(row["content_hash"])
    return None


def _check_uuid_or_404(asset_id: str) -> str:
    try:
        return str(uuid.UUID(asset_id))
    except (ValueError, TypeError, AttributeError):
        raise AssetNotFound("asset not found") from None


def _copy_into(path: Path, staged: StagedBlob) -> None:
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            staged.write(chunk)
    staged.finish()
