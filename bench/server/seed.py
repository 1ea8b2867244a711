"""Fill a server's database with finished jobs, fast, for the history benchmark.

Clones the newest finished job (a real entry written by the server) with fresh ids, in large
batches, through opencomfy's own Database and models: the server sees them as ordinary history.
"""

from __future__ import annotations

import uuid

from sqlalchemy import func, insert, select, text

from opencomfy.db.database import Database
from opencomfy.db.models import Job

BATCH = 5_000


async def seed_finished_jobs(db_url: str, count: int) -> None:
    db = await Database.open(db_url, migrate=False)
    try:
        async with db.read() as conn:
            template = (await conn.execute(
                select(Job).where(Job.history_seq.is_not(None)).order_by(Job.history_seq.desc()).limit(1)
            )).mappings().first()
            if template is None:
                raise RuntimeError("no finished job to clone: run some prompts first")
            seq = (await conn.execute(select(func.max(Job.seq)))).scalar() or 0
            hseq = (await conn.execute(select(func.max(Job.history_seq)))).scalar() or 0
        row = dict(template)
        for start in range(0, count, BATCH):
            rows = []
            for i in range(start, min(count, start + BATCH)):
                seq += 1
                hseq += 1
                rows.append({**row, "id": str(uuid.uuid4()), "seq": seq, "history_seq": hseq,
                             "number": float(seq), "client_id": None})
            async with db.write() as conn:
                await conn.execute(insert(Job), rows)
        # A server that grew to this size had its statistics refreshed on the way (PostgreSQL's
        # autovacuum); after a bulk insert, refresh them now so the planner sees the real table.
        async with db.write() as conn:
            await conn.execute(text("ANALYZE jobs"))
    finally:
        await db.close()
