"""A fresh database per test, SQLite and (when .ci/run started one) PostgreSQL."""

from __future__ import annotations

import pytest

from opencomfy.db.database import Database
from tests.harness import new_postgres_database, postgres_admin_url


@pytest.fixture(params=["sqlite", "postgres"])
async def db_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
    if not postgres_admin_url():
        pytest.skip("no PostgreSQL server (set OPENCOMFY_TEST_POSTGRES)")
    import asyncio

    return await asyncio.to_thread(new_postgres_database)


@pytest.fixture
async def db(db_url):
    database = await Database.open(db_url)
    yield database
    await database.close()
