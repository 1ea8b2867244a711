"""Migrations run at open on both databases; SQLite runs in WAL mode; transitions table."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import inspect, text

from opencomfy.db.database import Database
from opencomfy.jobs import transitions as tr


async def test_open_applies_migrations_once_and_again(db_url):
    first = await Database.open(db_url)
    await first.close()
    second = await Database.open(db_url)  # re-opening an up-to-date database is a no-op
    async with second.read() as conn:
        versions = set((await conn.execute(text("SELECT version_num FROM alembic_version"))).scalars())
        tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
        indexes = await conn.run_sync(lambda c: {i["name"] for i in inspect(c).get_indexes("jobs")})
    await second.close()
    assert versions  # at the newest revision of every branch
    assert {"jobs", "job_counts"} <= tables
    assert {"ix_jobs_pending_order", "ix_jobs_history", "ix_jobs_workspace_create",
            "ix_jobs_workspace_status", "ix_jobs_lease"} <= indexes


async def test_sqlite_runs_in_wal_mode(tmp_path):
    db = await Database.open(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    async with db.read() as conn:
        assert (await conn.execute(text("PRAGMA journal_mode"))).scalar_one() == "wal"
        assert (await conn.execute(text("PRAGMA synchronous"))).scalar_one() == 1  # NORMAL
    await db.close()


async def test_concurrent_writers_never_hit_database_is_locked(tmp_path):
    db = await Database.open(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    async with db.write() as conn:
        await conn.execute(text("CREATE TABLE t (n INTEGER)"))

    async def writer(i: int) -> None:
        for j in range(10):
            async with db.write() as conn:
                await conn.execute(text("INSERT INTO t VALUES (:n)"), {"n": i * 100 + j})

    await asyncio.gather(*(writer(i) for i in range(12)))
    async with db.read() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM t"))).scalar_one() == 120
    await db.close()


def test_transition_table():
    assert set(tr.EDGES) == {("pending", "in_progress"), ("pending", "cancelled"),
                             ("in_progress", "completed"), ("in_progress", "failed"),
                             ("in_progress", "cancelled")}
    for source in tr.TERMINAL:
        for target in tr.STATUSES:
            with pytest.raises(tr.InvalidTransition):
                tr.edge(source, target)
    with pytest.raises(tr.InvalidTransition):
        tr.edge("in_progress", "pending")
    with pytest.raises(tr.InvalidTransition):  # an ending edge must number the history
        tr.transition("in_progress", "completed")
