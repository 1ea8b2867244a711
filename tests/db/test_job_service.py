"""JobService on a real database: queue order, the worker side, control, recovery."""

from __future__ import annotations

import asyncio
import json

import pytest

from opencomfy.jobs import comfy_format as cf
from opencomfy.jobs import transitions as tr
from opencomfy.jobs.records import DuplicatePromptId, JobNotFound
from opencomfy.jobs.service import RESTART_REASON, JobService
from tests.db.factories import image_outputs, new_id, run_to_end, submit, tiny_prompt


async def test_submit_is_durable_and_numbered(jobs, db, bus):
    a = await submit(jobs)
    b = await submit(jobs)
    assert b.number == a.number + 1
    # A second service over the same database sees the job (it was committed before return).
    other = JobService(db=db, bus=bus)
    running, pending = await other.queue_snapshot(workspace_id="local")
    assert [r.id for r in pending] == [a.prompt_id, b.prompt_id]
    assert running == []


async def test_claim_follows_number_then_submit_order(jobs):
    first = await submit(jobs)
    second = await submit(jobs)
    front = await submit(jobs, front=True)
    explicit = await submit(jobs, number=-100.5)
    order = []
    while (job := await jobs.claim_next_job(worker_id="w", lease_seconds=30)) is not None:
        order.append(job.prompt_id)
    assert order == [explicit.prompt_id, front.prompt_id, first.prompt_id, second.prompt_id]
    assert front.number == -(second.number + 1)


async def test_claimed_job_carries_everything_needed_to_run(jobs):
    pid = new_id()
    await submit(jobs, prompt_id=pid, color=7, client_id="client-a",
                 extra_data={"extra_pnginfo": {"workflow": {"id": "wf-1"}},
                             "api_key_comfy_org": "secret"})
    job = await jobs.claim_next_job(worker_id="w", lease_seconds=30)
    assert job.prompt_id == pid
    assert job.prompt == tiny_prompt(7)
    assert job.outputs_to_execute == ["3"]
    assert job.client_id == "client-a"
    assert job.extra_data["client_id"] == "client-a"
    assert job.extra_data["api_key_comfy_org"] == "secret"  # the worker gets the key...
    assert isinstance(job.extra_data["create_time"], int)
    running, _ = await jobs.queue_snapshot(workspace_id="local")
    shown = json.loads(cf.queue_json(running, []))["queue_running"][0]
    assert "api_key_comfy_org" not in shown[3]  # ...nobody else ever sees it
    assert shown[1] == pid and shown[4] == ["3"]


async def test_duplicate_prompt_id_is_refused(jobs):
    pid = new_id()
    await submit(jobs, prompt_id=pid)
    with pytest.raises(DuplicatePromptId):
        await submit(jobs, prompt_id=pid)
    # Two concurrent submits of one id in the same batch: exactly one wins.
    twin = new_id()
    results = await asyncio.gather(submit(jobs, prompt_id=twin), submit(jobs, prompt_id=twin),
                                   return_exceptions=True)
    assert sum(isinstance(r, DuplicatePromptId) for r in results) == 1
    assert await jobs.queue_remaining(workspace_id="local") == 2


async def test_concurrent_submits_are_group_committed(jobs, db):
    results = await asyncio.gather(*(submit(jobs, color=i) for i in range(300)))
    assert len({r.prompt_id for r in results}) == 300
    assert sorted(r.number for r in results) == list(range(300))
    assert await jobs.queue_remaining(workspace_id="local") == 300


async def test_finish_stores_results_and_history_order(jobs):
    a = await submit(jobs)
    b = await submit(jobs)
    await run_to_end(jobs, outputs=image_outputs(kind="output"))
    await run_to_end(jobs, status="failed", error={"exception_message": "boom", "node_id": "2",
                                                    "node_type": "ImageInvert"})
    rows = await jobs.history_page(workspace_id="local", max_items=None, offset=None)
    history = json.loads(cf.history_json(rows))
    assert list(history) == [a.prompt_id, b.prompt_id]
    ok, bad = history[a.prompt_id], history[b.prompt_id]
    assert ok["status"]["status_str"] == "success" and ok["status"]["completed"] is True
    assert ok["outputs"]["3"]["images"][0]["type"] == "output"
    assert ok["prompt"][0] == a.number and ok["prompt"][2] == tiny_prompt()
    assert bad["status"] == {"status_str": "error", "completed": False,
                             "messages": bad["status"]["messages"]}
    assert bad["status"]["messages"][-1][0] == "execution_error"
    assert await jobs.queue_remaining(workspace_id="local") == 0
    page = await jobs.list_jobs(workspace_id="local")
    by_id = {r.id: cf.job_entry(r) for r in page.rows}
    assert by_id[a.prompt_id]["status"] == "completed"
    assert by_id[a.prompt_id]["execution_start_time"] == 1000
    assert by_id[a.prompt_id]["execution_end_time"] == 1250
    assert by_id[a.prompt_id]["outputs_count"] == 1
    assert by_id[a.prompt_id]["preview_output"]["nodeId"] == "3"
    assert by_id[b.prompt_id]["status"] == "failed"
    assert by_id[b.prompt_id]["execution_error"]["exception_message"] == "boom"


async def test_finish_by_another_worker_or_twice_is_refused(jobs):
    await submit(jobs)
    job = await jobs.claim_next_job(worker_id="w1", lease_seconds=30)
    assert not await jobs.finish_job(prompt_id=job.prompt_id, worker_id="intruder", status="completed")
    assert await jobs.finish_job(prompt_id=job.prompt_id, worker_id="w1", status="completed")
    assert not await jobs.finish_job(prompt_id=job.prompt_id, worker_id="w1", status="failed")
    with pytest.raises(tr.InvalidTransition):
        await jobs.finish_job(prompt_id=job.prompt_id, worker_id="w1", status="pending")
    row = await jobs.get_job(workspace_id="local", job_id=job.prompt_id)
    assert row.status == "completed"


async def test_renew_lease_only_for_the_holder(jobs):
    await submit(jobs)
    job = await jobs.claim_next_job(worker_id="w1", lease_seconds=30)
    assert await jobs.renew_lease(prompt_id=job.prompt_id, worker_id="w1", lease_seconds=60)
    assert not await jobs.renew_lease(prompt_id=job.prompt_id, worker_id="w2", lease_seconds=60)
    assert not await jobs.renew_lease(prompt_id=new_id(), worker_id="w1", lease_seconds=60)


async def test_stalled_job_is_failed_visibly(jobs):
    await submit(jobs)
    job = await jobs.claim_next_job(worker_id="w1", lease_seconds=0.001)
    await asyncio.sleep(0.05)
    assert await jobs.fail_stalled_jobs() == [job.prompt_id]
    row = await jobs.get_job(workspace_id="local", job_id=job.prompt_id)
    assert row.status == "failed" and "lease" in row.error_message
    # The worker waking up later cannot turn it into a success.
    assert not await jobs.finish_job(prompt_id=job.prompt_id, worker_id="w1", status="completed")


async def test_recover_after_restart_fails_running_keeps_pending(db, bus):
    first = JobService(db=db, bus=bus)
    await first.recover_after_restart()
    running = await submit(first)
    pending = await submit(first)
    await first.claim_next_job(worker_id="dead", lease_seconds=3600)
    await first.close()  # the "process" dies with one job running
    second = JobService(db=db, bus=bus)
    assert await second.recover_after_restart() == [running.prompt_id]
    row = await second.get_job(workspace_id="local", job_id=running.prompt_id)
    assert row.status == "failed" and row.error_message == RESTART_REASON
    entry = json.loads(cf.history_json([await second.history_entry(
        workspace_id="local", prompt_id=running.prompt_id)]))[running.prompt_id]
    assert entry["status"]["messages"][0][1]["exception_message"] == RESTART_REASON
    job = await second.claim_next_job(worker_id="w", lease_seconds=30)
    assert job.prompt_id == pending.prompt_id  # pending jobs still run
    later = await submit(second)
    assert later.number > pending.number  # the counter continues after a restart
    await second.close()


async def test_cancel_pending_running_and_idempotent(jobs, bus):
    sub = bus.subscribe(kinds=("interrupt",))
    run = await submit(jobs)
    wait = await submit(jobs)
    await jobs.claim_next_job(worker_id="w", lease_seconds=30)
    assert await jobs.cancel(workspace_id="local", job_id=wait.prompt_id) is True
    assert await jobs.cancel(workspace_id="local", job_id=wait.prompt_id) is False
    assert (await jobs.get_job(workspace_id="local", job_id=wait.prompt_id)).status == "cancelled"
    assert await jobs.cancel(workspace_id="local", job_id=run.prompt_id) is True
    msg = sub.get_nowait()
    assert msg.kind == "interrupt" and msg.data == {"prompt_id": run.prompt_id}
    assert await jobs.cancel(workspace_id="local", job_id=run.prompt_id) is False  # cancelling
    assert await jobs.finish_job(prompt_id=run.prompt_id, worker_id="w", status="cancelled")
    assert await jobs.cancel(workspace_id="local", job_id=run.prompt_id) is False
    with pytest.raises(JobNotFound):
        await jobs.cancel(workspace_id="local", job_id=new_id())
    with pytest.raises(JobNotFound):
        await jobs.cancel(workspace_id="other", job_id=run.prompt_id)


async def test_interrupt_only_the_named_running_job(jobs, bus):
    sub = bus.subscribe(kinds=("interrupt",))
    run = await submit(jobs)
    wait = await submit(jobs)
    await jobs.claim_next_job(worker_id="w", lease_seconds=30)
    assert await jobs.request_interrupt(workspace_id="local", prompt_id=wait.prompt_id) == []
    assert sub.get_nowait() is None
    assert await jobs.request_interrupt(workspace_id="local") == [run.prompt_id]
    assert sub.get_nowait().data == {"prompt_id": run.prompt_id}


async def test_delete_and_clear_pending(jobs):
    ids = [(await submit(jobs)).prompt_id for _ in range(4)]
    await jobs.claim_next_job(worker_id="w", lease_seconds=30)
    assert await jobs.delete_pending(workspace_id="local", prompt_ids=[ids[0], ids[1], new_id()]) == [ids[1]]
    assert sorted(await jobs.clear_pending(workspace_id="local")) == sorted(ids[2:])
    running, pending = await jobs.queue_snapshot(workspace_id="local")
    assert [r.id for r in running] == [ids[0]] and pending == []


async def test_queue_changes_are_announced_after_commit(jobs, bus, db):
    sub = bus.subscribe(kinds=("queue_changed",))
    await submit(jobs)
    msg = sub.get_nowait()
    assert msg.data == {"queue_remaining": 1} and msg.workspace_id == "local"
    await jobs.claim_next_job(worker_id="w", lease_seconds=30)
    assert sub.get_nowait().data == {"queue_remaining": 1}


async def test_workspaces_never_see_each_other(jobs):
    mine = await submit(jobs, workspace_id="a")
    await submit(jobs, workspace_id="b")
    assert await jobs.queue_remaining(workspace_id="a") == 1
    _, pending = await jobs.queue_snapshot(workspace_id="b")
    assert mine.prompt_id not in [r.id for r in pending]
    with pytest.raises(JobNotFound):
        await jobs.get_job(workspace_id="b", job_id=mine.prompt_id)
    assert await jobs.delete_pending(workspace_id="b", prompt_ids=[mine.prompt_id]) == []


async def test_concurrent_claimers_never_share_a_job(jobs):
    submitted = {(await submit(jobs, color=i)).prompt_id for i in range(20)}

    async def worker(name: str) -> list[str]:
        got = []
        while (job := await jobs.claim_next_job(worker_id=name, lease_seconds=30)) is not None:
            got.append(job.prompt_id)
        return got

    claimed = [pid for got in await asyncio.gather(*(worker(f"w{i}") for i in range(5))) for pid in got]
    assert len(claimed) == 20 and set(claimed) == submitted


async def test_job_counts_stay_in_step_with_the_rows(jobs, db):
    from sqlalchemy import func, select

    from opencomfy.db.models import Job, JobCount

    ids = [(await submit(jobs, workspace_id=ws)).prompt_id for ws in ("a", "a", "b", "a", "b", "a")]
    job = await jobs.claim_next_job(worker_id="w", lease_seconds=30)
    await jobs.finish_job(prompt_id=job.prompt_id, worker_id="w", status="completed")
    job = await jobs.claim_next_job(worker_id="w", lease_seconds=30)
    await jobs.cancel(workspace_id="a", job_id=ids[3])
    await jobs.clear_pending(workspace_id="b")
    await jobs.delete_history(workspace_id="a", prompt_ids=[ids[0]])
    async with db.read() as conn:
        actual = {(ws, st): n for ws, st, n in (await conn.execute(
            select(Job.workspace_id, Job.status, func.count()).group_by(Job.workspace_id, Job.status))).all()}
        kept = {(ws, st): n for ws, st, n in (await conn.execute(
            select(JobCount.workspace_id, JobCount.status, JobCount.n))).all() if n}
    assert kept == actual
    assert await jobs.queue_remaining(workspace_id="a") == 2  # ids[1] running, ids[5] pending


async def test_finish_and_claim_next_in_one_transaction(jobs, bus):
    a = await submit(jobs, workspace_id="a")
    b = await submit(jobs, workspace_id="b")
    c = await submit(jobs, workspace_id="a")
    first = await jobs.claim_next_job(worker_id="w", lease_seconds=30)
    assert first.prompt_id == a.prompt_id
    sub = bus.subscribe(kinds=("queue_changed",))
    # Another worker cannot end it, but still gets the next job.
    finished, nxt = await jobs.finish_job_and_claim_next(
        prompt_id=a.prompt_id, worker_id="intruder", status="completed", lease_seconds=30)
    assert not finished and nxt.prompt_id == b.prompt_id and nxt.workspace_id == "b"
    finished, nxt = await jobs.finish_job_and_claim_next(
        prompt_id=a.prompt_id, worker_id="w", status="completed", lease_seconds=30,
        outputs=image_outputs(), messages=[("execution_success", {"timestamp": 5})])
    assert finished and nxt.prompt_id == c.prompt_id and nxt.prompt == tiny_prompt()
    row = await jobs.get_job(workspace_id="a", job_id=a.prompt_id)
    assert row.status == "completed" and row.outputs_count == 1
    # Counts moved once each: a finished, b and c running.
    assert await jobs.queue_remaining(workspace_id="a") == 1
    assert await jobs.queue_remaining(workspace_id="b") == 1
    assert sorted((m.workspace_id, m.data["queue_remaining"]) for m in
                  iter(sub.get_nowait, None)) == [("a", 1), ("b", 1)]
    # Nothing left to claim: the end is still stored.
    finished, nxt = await jobs.finish_job_and_claim_next(
        prompt_id=c.prompt_id, worker_id="w", status="failed", lease_seconds=30,
        error={"exception_message": "boom"})
    assert finished and nxt is None
    assert (await jobs.get_job(workspace_id="a", job_id=c.prompt_id)).status == "failed"


async def test_finish_and_claim_next_falls_back_to_one_by_one(jobs, monkeypatch):
    a = await submit(jobs)
    b = await submit(jobs)
    await jobs.claim_next_job(worker_id="w", lease_seconds=30)
    real_run_write = jobs.db.run_write
    calls = []

    async def first_write_fails(fn, **kw):
        calls.append(fn)
        if len(calls) == 1:
            raise RuntimeError("database hiccup")
        return await real_run_write(fn, **kw)

    monkeypatch.setattr(jobs.db, "run_write", first_write_fails)
    finished, nxt = await jobs.finish_job_and_claim_next(
        prompt_id=a.prompt_id, worker_id="w", status="completed", lease_seconds=30)
    assert finished and nxt.prompt_id == b.prompt_id and len(calls) == 3
    assert (await jobs.get_job(workspace_id="local", job_id=a.prompt_id)).status == "completed"
