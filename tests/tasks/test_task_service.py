"""TaskService: the status machine, failures with reasons, idempotency, restarts, isolation."""

from __future__ import annotations

import asyncio

from opencomfy.db.database import Database
from opencomfy.tasks import TaskFailed, TaskService
from opencomfy.tasks import transitions as tr
from opencomfy.tasks.service import RESTART_REASON, STOP_REASON


async def _finished(tasks: TaskService, ws: str, task_id: str) -> dict:
    await tasks.wait(task_id)
    return await tasks.get(workspace_id=ws, task_id=task_id)


async def test_completed_task_has_result_progress_and_times(db):
    tasks = TaskService(db=db)
    steps = []

    async def work(ctx):
        row = await tasks.get(workspace_id="w", task_id=ctx.task_id)
        steps.append(row["status"])
        await ctx.progress(0.5, details={"half": True}, force=True)
        steps.append((await tasks.get(workspace_id="w", task_id=ctx.task_id))["progress"])
        return {"answer": 42}

    row, created = await tasks.submit(workspace_id="w", task_name="demo", payload={"p": 1}, work=work)
    assert created and row["status"] == "created" and row["idempotency_key"] == row["id"]
    done = await _finished(tasks, "w", row["id"])
    assert steps == ["running", 0.5]
    assert done["status"] == "completed" and done["result"] == {"answer": 42}
    assert done["progress"] == 1.0 and done["payload"] == {"p": 1}
    assert done["started_at"] <= done["completed_at"] and done["error_message"] is None


async def test_failures_carry_their_reason(db):
    tasks = TaskService(db=db)

    async def expected(ctx):
        raise TaskFailed("the source answered HTTP 404")

    async def unexpected(ctx):
        raise RuntimeError("secret internals")

    a, _ = await tasks.submit(workspace_id="w", task_name="demo", payload={}, work=expected)
    b, _ = await tasks.submit(workspace_id="w", task_name="demo", payload={}, work=unexpected)
    a, b = await _finished(tasks, "w", a["id"]), await _finished(tasks, "w", b["id"])
    assert a["status"] == "failed" and a["error_message"] == "the source answered HTTP 404"
    assert b["status"] == "failed" and b["error_message"] == "internal error (RuntimeError)"
    assert "secret" not in b["error_message"]


async def test_transitions_only_follow_allowed_edges(db):
    tasks = TaskService(db=db)

    async def work(ctx):
        return {}

    row, _ = await tasks.submit(workspace_id="w", task_name="demo", payload={}, work=work)
    await tasks.wait(row["id"])
    async with db.write() as conn:
        assert await tr.transition(conn, task_ids=[row["id"]], to=tr.RUNNING) == 0
        assert await tr.transition(conn, task_ids=[row["id"]], to=tr.FAILED) == 0
    assert (await tasks.get(workspace_id="w", task_id=row["id"]))["status"] == "completed"
    assert tr.sources_of(tr.FAILED) == ["created", "running"]
    assert tr.ALLOWED[tr.COMPLETED] == frozenset()


async def test_idempotency_key_joins_the_running_task(db):
    tasks = TaskService(db=db)
    gate = asyncio.Event()

    async def work(ctx):
        await gate.wait()
        return {}

    first, created = await tasks.submit(workspace_id="w", task_name="dl", payload={}, work=work,
                                        idempotency_key="k")
    second, created2 = await tasks.submit(workspace_id="w", task_name="dl", payload={}, work=work,
                                          idempotency_key="k")
    other_ws, created3 = await tasks.submit(workspace_id="v", task_name="dl", payload={}, work=work,
                                            idempotency_key="k")
    assert created and not created2 and second["id"] == first["id"]
    assert created3 and other_ws["id"] != first["id"]
    gate.set()
    await tasks.wait(first["id"])
    await tasks.wait(other_ws["id"])
    third, created4 = await tasks.submit(workspace_id="w", task_name="dl", payload={}, work=work,
                                         idempotency_key="k")
    assert created4  # the earlier one finished: a new task
    await tasks.wait(third["id"])


async def test_restart_fails_unfinished_tasks_with_a_reason(db_url):
    db = await Database.open(db_url)
    tasks = TaskService(db=db)
    started = asyncio.Event()

    async def forever(ctx):
        started.set()
        await asyncio.sleep(3600)

    row, _ = await tasks.submit(workspace_id="w", task_name="long", payload={}, work=forever)
    await started.wait()
    # The process "dies": its database goes away under the running task, which never ends.
    runner = tasks._runners[row["id"]]
    await db.close()
    db2 = await Database.open(db_url)
    try:
        again = TaskService(db=db2)
        assert (await again.get(workspace_id="w", task_id=row["id"]))["status"] == "running"
        assert await again.recover_after_restart() == 1
        failed = await again.get(workspace_id="w", task_id=row["id"])
        assert failed["status"] == "failed" and failed["error_message"] == RESTART_REASON
        assert failed["completed_at"] is not None
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        await db2.close()


async def test_close_fails_running_tasks(db):
    tasks = TaskService(db=db)
    started = asyncio.Event()

    async def forever(ctx):
        started.set()
        await asyncio.sleep(3600)

    row, _ = await tasks.submit(workspace_id="w", task_name="long", payload={}, work=forever)
    await started.wait()
    await tasks.close()
    stopped = await tasks.get(workspace_id="w", task_id=row["id"])
    assert stopped["status"] == "failed" and stopped["error_message"] == STOP_REASON


async def test_cancel_request_reaches_the_work(db):
    tasks = TaskService(db=db)
    started = asyncio.Event()

    async def work(ctx):
        started.set()
        while not ctx.cancelled:
            await asyncio.sleep(0.01)
        ctx.check_cancelled()

    row, _ = await tasks.submit(workspace_id="w", task_name="seed", payload={}, work=work)
    await started.wait()
    assert tasks.request_cancel(row["id"]) is True
    done = await _finished(tasks, "w", row["id"])
    assert done["status"] == "failed" and done["error_message"] == "cancelled"
    assert tasks.request_cancel(row["id"]) is False


async def test_other_workspace_sees_nothing(db):
    tasks = TaskService(db=db)

    async def work(ctx):
        return {}

    row, _ = await tasks.submit(workspace_id="a", task_name="demo", payload={}, work=work)
    await tasks.wait(row["id"])
    assert await tasks.get(workspace_id="b", task_id=row["id"]) is None
    rows, total = await tasks.page(workspace_id="b")
    assert rows == [] and total == 0
    rows, total = await tasks.page(workspace_id="a", statuses=["completed"])
    assert total == 1 and rows[0]["id"] == row["id"]
