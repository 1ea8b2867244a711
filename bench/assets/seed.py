"""Fill a server's database with asset records, fast, for the list benchmark.

Inserts `count` records (and two tags each) over one stored content through opencomfy's own
Database and models, in large batches: the server sees them as ordinary assets.
"""

from __future__ import annotations

import time
import uuid

from sqlalchemy import delete, func, insert, select, text

from opencomfy.assets.models import Asset, AssetContent, AssetCount, AssetTag
from opencomfy.db.database import Database

BATCH = 5_000
TAGS = ("input", "output", "models", "checkpoints", "loras", "favourite")


async def seed_assets(db_url: str, count: int, *, workspace_id: str = "local") -> None:
    db = await Database.open(db_url, migrate=False)
    digest = "blake3:" + "ab" * 32
    now = int(time.time() * 1000)
    try:
        async with db.write() as conn:
            await conn.execute(insert(AssetContent).values(hash=digest, size_bytes=1234, mime_type="image/png",
                                                           in_store=True, created_at=now))
        for start in range(0, count, BATCH):
            rows, tags = [], []
            for i in range(start, min(start + BATCH, count)):
                asset_id = str(uuid.uuid4())
                stamp = now - (count - i) * 10
                rows.append({"id": asset_id, "workspace_id": workspace_id, "content_hash": digest,
                             "name": f"image_{i:06d}.png", "mime_type": "image/png", "size": 1000 + i % 977,
                             "user_metadata": {"i": i}, "system_metadata": {}, "is_immutable": False,
                             "is_missing": False, "created_at": stamp, "updated_at": stamp,
                             "last_access_time": stamp})
                for tag in (TAGS[i % 2], TAGS[2 + i % 4]):
                    tags.append({"asset_id": asset_id, "tag": tag, "workspace_id": workspace_id,
                                 "origin": "system"})
            async with db.write() as conn:
                await conn.execute(insert(Asset), rows)
                await conn.execute(insert(AssetTag), tags)
        async with db.write() as conn:
            # The repository keeps this count with every insert; a bulk insert sets it once.
            await conn.execute(delete(AssetCount).where(AssetCount.workspace_id == workspace_id))
            await conn.execute(insert(AssetCount).from_select(
                ["workspace_id", "n"], select(Asset.workspace_id, func.count()).where(
                    Asset.workspace_id == workspace_id).group_by(Asset.workspace_id)))
        async with db.write() as conn:
            # What autovacuum (or SQLite's optimizer) would soon do: plans need statistics.
            await conn.execute(text("ANALYZE"))
    finally:
        await db.close()
