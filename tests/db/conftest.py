"""JobService and Database against a real SQLite file and (when available) PostgreSQL."""

from __future__ import annotations

import pytest

from opencomfy.db.database import Database
from opencomfy.events.memory import MemoryEventBus
from opencomfy.jobs.service import JobService
from tests.harness import new_postgres_database, postgres_admin_url


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'opencomfy.db'}"
    if not postgres_admin_url():
        pytest.skip("no PostgreSQL server (set OPENCOMFY_TEST_POSTGRES; .ci/run does)")
    return new_postgres_database()


@pytest.fixture
async def db(db_url):
    database = await Database.open(db_url)
    yield database
    await database.close()


@pytest.fixture
async def bus():
    return MemoryEventBus()


@pytest.fixture
async def jobs(db, bus):
    service = JobService(db=db, bus=bus)
    await service.recover_after_restart()
    yield service
    await service.close()
