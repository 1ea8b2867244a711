"""POST /api/free with several workspaces: one workspace empties only its own caches, and
its model unload waits until no other workspace's job is about to run (the embedded worker
against a real JobService, the engine scripted as in test_worker.py)."""

from __future__ import annotations

import asyncio

from tests.server.test_worker import prompt, stack, wait_finished  # noqa: F401  (fixture)


async def _submit(jobs, workspace_id: str, seconds: float) -> str:
    job = await jobs.submit(workspace_id=workspace_id, prompt=prompt("wait", seconds),
                            outputs_to_execute=["1"], client_id=None)
    return job.prompt_id


async def _finished(jobs, workspace_id: str, prompt_id: str, timeout: float = 15):
    for _ in range(int(timeout / 0.02)):
        row = await jobs.get_job(workspace_id=workspace_id, job_id=prompt_id)
        if row.status in ("completed", "failed", "cancelled"):
            return row
        await asyncio.sleep(0.02)
    raise TimeoutError(prompt_id)


async def test_an_unload_waits_for_the_other_workspaces_queued_jobs(stack):  # noqa: F811
    jobs, bus, engine, worker = stack
    await worker.start()
    a1 = await _submit(jobs, "ws-a", 0.4)
    while a1 not in engine.ran:
        await asyncio.sleep(0.01)
    b1, b2 = await _submit(jobs, "ws-b", 0.2), await _submit(jobs, "ws-b", 0.2)
    jobs.request_free(workspace_id="ws-a", unload_models=True)
    await _finished(jobs, "ws-b", b2)
    for _ in range(200):
        if any(unload for _, unload, _, _ in engine.free_log):
            break
        await asyncio.sleep(0.02)
    # Before b1 ran: ws-a's caches only; the unload came once ws-b's jobs were done.
    assert engine.free_log[0] == ("ws-a", False, False, [a1])
    unloads = [entry for entry in engine.free_log if entry[1]]
    assert unloads == [("ws-a", True, False, [a1, b1, b2])]
    assert all(scope == "ws-a" for scope, *_ in engine.free_log)


async def test_an_unload_runs_before_the_askers_own_next_job(stack):  # noqa: F811
    jobs, bus, engine, worker = stack
    await worker.start()
    b1 = await _submit(jobs, "ws-b", 0.4)
    while b1 not in engine.ran:
        await asyncio.sleep(0.01)
    b2 = await _submit(jobs, "ws-b", 0.1)
    jobs.request_free(workspace_id="ws-b", unload_models=True, free_memory=True)
    await _finished(jobs, "ws-b", b2)
    assert engine.free_log[0] == ("ws-b", True, True, [b1])


async def test_single_user_free_is_unchanged(stack):  # noqa: F811
    """`--auth none`: every job is the local workspace's, so nothing is ever deferred."""
    jobs, bus, engine, worker = stack
    await worker.start()
    job = await jobs.submit(workspace_id="local", prompt=prompt("wait", 0.3),
                            outputs_to_execute=["1"], client_id=None)
    while job.prompt_id not in engine.ran:
        await asyncio.sleep(0.01)
    jobs.request_free(unload_models=True)
    await wait_finished(jobs, job.prompt_id)
    for _ in range(100):
        if engine.free_log:
            break
        await asyncio.sleep(0.02)
    assert engine.free_log == [("local", True, False, [job.prompt_id])]
