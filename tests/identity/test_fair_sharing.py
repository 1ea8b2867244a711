"""Fair sharing of the workers: round-robin across workspaces, priority inside each, and a
per-workspace limit on running jobs (JobService against SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest

from opencomfy.db.database import Database
from opencomfy.events.memory import MemoryEventBus
from opencomfy.jobs.service import JobService
from tests.harness import new_postgres_database, postgres_admin_url

PROMPT = {"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1,
                                                       "color": 0}}}


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'fair.db'}"
    if not postgres_admin_url():
        pytest.skip("no PostgreSQL server (set OPENCOMFY_TEST_POSTGRES; .ci/run does)")
    return new_postgres_database()


async def _service(db_url: str, limit: int = 0) -> JobService:
    db = await Database.open(db_url)
    jobs = JobService(db=db, bus=MemoryEventBus(), workspace_concurrency=limit)
    await jobs.recover_after_restart()
    return jobs


async def _close(jobs: JobService) -> None:
    await jobs.close()
    await jobs.db.close()


async def _submit(jobs: JobService, workspace: str, **kw) -> str:
    job = await jobs.submit(workspace_id=workspace, prompt=PROMPT, outputs_to_execute=["1"], **kw)
    return job.prompt_id


async def _claim_all(jobs: JobService) -> list[str]:
    order = []
    while (job := await jobs.claim_next_job(worker_id="w", lease_seconds=30)) is not None:
        order.append(job.prompt_id)
        await jobs.finish_job(prompt_id=job.prompt_id, worker_id="w", status="completed")
    return order


async def test_round_robin_across_workspaces(db_url):
    jobs = await _service(db_url)
    try:
        a = [await _submit(jobs, "w-a") for _ in range(4)]
        b = [await _submit(jobs, "w-b") for _ in range(2)]
        c = [await _submit(jobs, "w-c")]
        # A queued four first; FIFO would run all of A before B and C.
        assert await _claim_all(jobs) == [a[0], b[0], c[0], a[1], b[1], a[2], a[3]]
    finally:
        await _close(jobs)


async def test_priority_inside_a_workspace(db_url):
    jobs = await _service(db_url)
    try:
        first = await _submit(jobs, "w-a")
        second = await _submit(jobs, "w-a")
        urgent = await _submit(jobs, "w-a", front=True)
        assert await _claim_all(jobs) == [urgent, first, second]
    finally:
        await _close(jobs)


async def test_per_workspace_concurrency_limit(db_url):
    jobs = await _service(db_url, limit=1)
    try:
        a = [await _submit(jobs, "w-a") for _ in range(3)]
        b = await _submit(jobs, "w-b")
        first = await jobs.claim_next_job(worker_id="w1", lease_seconds=30)
        second = await jobs.claim_next_job(worker_id="w2", lease_seconds=30)
        assert (first.prompt_id, second.prompt_id) == (a[0], b)
        # A already runs one job: its other jobs wait although a worker is free.
        assert await jobs.claim_next_job(worker_id="w3", lease_seconds=30) is None
        await jobs.finish_job(prompt_id=a[0], worker_id="w1", status="completed")
        third = await jobs.claim_next_job(worker_id="w3", lease_seconds=30)
        assert third.prompt_id == a[1]
    finally:
        await _close(jobs)


async def test_finishing_frees_the_slot_for_the_next_claim(db_url):
    """finish + claim in one transaction: the finished job no longer counts against the limit."""
    jobs = await _service(db_url, limit=1)
    try:
        a = [await _submit(jobs, "w-a") for _ in range(2)]
        first = await jobs.claim_next_job(worker_id="w", lease_seconds=30)
        finished, nxt = await jobs.finish_job_and_claim_next(
            prompt_id=first.prompt_id, worker_id="w", status="completed", lease_seconds=30)
        assert finished and nxt is not None and nxt.prompt_id == a[1]
    finally:
        await _close(jobs)
