"""The embedded worker against a real JobService on a SQLite file.

The engine here is a scripted stand-in (the real one is exercised by the server tests), so
these tests pin the worker's own duties: queue order, storing before announcing, failures
that end the job but not the worker, targeted interrupts, /free after the job.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field

import pytest

from opencomfy.config import Config
from opencomfy.db.database import Database
from opencomfy.events.base import BusMessage
from opencomfy.events.memory import MemoryEventBus
from opencomfy.jobs.service import JobService
from opencomfy.jobs.worker import EmbeddedWorker


@dataclass
class Result:
    status: str
    outputs: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)
    messages: list = field(default_factory=list)
    error: dict | None = None


class ScriptedEngine:
    """Runs prompts of one node {"action": ok|crash|wait}: sends ComfyUI's events."""

    def __init__(self) -> None:
        self.ran: list[str] = []
        self.freed: list[dict] = []
        self.free_log: list[tuple] = []  # (scope, unload_models, free_memory, prompts run so far)
        self.thread_ids: set[int] = set()

    async def run(self, prompt, *, prompt_id, extra_data, execute_outputs, sink, interrupt,
                  cache_scope=""):
        self.thread_ids.add(threading.get_ident())
        self.ran.append(prompt_id)
        action = prompt["1"]["inputs"]["action"]
        ts = int(time.time() * 1000)
        start = ("execution_start", {"prompt_id": prompt_id, "timestamp": ts})
        sink.send(*start)
        sink.send("executing", {"node": "1", "display_node": "1", "prompt_id": prompt_id})
        if action == "crash":
            raise RuntimeError("the engine itself broke")
        if action == "garbage":
            return None
        if action == "block":  # a synchronous node: holds the worker's loop
            time.sleep(prompt["1"]["inputs"]["seconds"])
        if action == "wait":
            for _ in range(int(prompt["1"]["inputs"].get("seconds", 1) * 100)):
                if interrupt.is_set():
                    data = {"prompt_id": prompt_id, "node_id": "1", "node_type": "Wait",
                            "executed": [], "timestamp": ts}
                    sink.send("execution_interrupted", data)
                    return Result("interrupted", messages=[start, ("execution_interrupted", data)],
                                  error=data)
                await asyncio.sleep(0.01)
        ui = {"text": [prompt_id]}
        sink.send("executed", {"node": "1", "display_node": "1", "output": ui, "prompt_id": prompt_id})
        end = ("execution_success", {"prompt_id": prompt_id, "timestamp": ts})
        sink.send(*end)
        return Result("success", outputs={"1": ui}, messages=[start, end],
                      meta={"1": {"node_id": "1", "display_node": "1", "parent_node": None,
                                  "real_node_id": "1"}})

    def free(self, unload_models=False, free_memory=False, scope=None):
        self.freed.append({"unload_models": unload_models, "free_memory": free_memory})
        self.free_log.append((scope, unload_models, free_memory, list(self.ran)))


def prompt(action: str, seconds: float = 1) -> dict:
    return {"1": {"class_type": "Script", "inputs": {"action": action, "seconds": seconds}}}


@pytest.fixture
async def stack(tmp_path):
    db = await Database.open(f"sqlite+aiosqlite:///{tmp_path / 'jobs.db'}")
    bus = MemoryEventBus()
    jobs = JobService(db=db, bus=bus)
    await jobs.recover_after_restart()
    engine = ScriptedEngine()
    worker = EmbeddedWorker(config=Config(base_directory=tmp_path), jobs=jobs, registry=None,
                            bus=bus, engine_factory=lambda: engine)
    yield jobs, bus, engine, worker
    await worker.stop()
    await jobs.close()
    await db.close()


async def submit(jobs: JobService, action: str, client_id: str | None = "c1",
                 seconds: float = 1) -> str:
    job = await jobs.submit(workspace_id="local", prompt=prompt(action, seconds),
                            outputs_to_execute=["1"],
                            client_id=client_id)
    return job.prompt_id


async def wait_finished(jobs: JobService, prompt_id: str, timeout: float = 10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = await jobs.get_job(workspace_id="local", job_id=prompt_id)
        if row.status in ("completed", "failed", "cancelled"):
            return row
        await asyncio.sleep(0.02)
    raise TimeoutError(prompt_id)


async def test_runs_jobs_in_queue_order_and_stores_history_before_the_final_executing(stack):
    jobs, bus, engine, worker = stack
    ids = [await submit(jobs, "ok") for _ in range(3)]
    seen: list[tuple] = []
    final = asyncio.Event()

    async def watch():
        async for msg in bus.subscribe(kinds=["executing", "execution_success"]):
            if msg.kind == "executing" and msg.data["node"] is None:
                # The moment clients learn the prompt is done, its history must be readable.
                row = await jobs.history_entry(workspace_id="local", prompt_id=msg.prompt_id)
                seen.append(("done", msg.prompt_id, row is not None and row.status))
                if msg.prompt_id == ids[-1]:
                    final.set()
            else:
                seen.append((msg.kind, msg.prompt_id, msg.client_id))

    watcher = asyncio.ensure_future(watch())
    await worker.start()
    await asyncio.wait_for(final.wait(), 10)
    watcher.cancel()
    assert engine.ran == ids
    assert threading.get_ident() not in engine.thread_ids  # the engine runs on its own thread
    assert [s for s in seen if s[0] == "done"] == [("done", i, "completed") for i in ids]
    assert [s for s in seen if s[0] == "executing"][0] == ("executing", ids[0], "c1")
    # One prompt ends (final executing) before the next one's events begin, even though the
    # next is claimed in the same round trip that stores the previous one's end.
    for done, following in zip(ids, ids[1:]):
        end = seen.index(("done", done, "completed"))
        assert end < seen.index(("executing", following, "c1"))
    row = await jobs.get_job(workspace_id="local", job_id=ids[0])
    assert row.status == "completed"


async def test_an_engine_failure_fails_the_job_visibly_and_the_worker_goes_on(stack):
    jobs, bus, engine, worker = stack
    errors: list[BusMessage] = []
    bus.add_listener(errors.append, kinds=["execution_error"])
    await worker.start()
    bad = await submit(jobs, "crash")
    good = await submit(jobs, "ok")
    row = await wait_finished(jobs, bad)
    assert row.status == "failed"
    assert "the engine itself broke" in row.error_message
    assert (await wait_finished(jobs, good)).status == "completed"
    assert errors and errors[0].prompt_id == bad and errors[0].client_id == "c1"


async def test_interrupt_stops_only_the_named_prompt(stack):
    jobs, bus, engine, worker = stack
    await worker.start()
    running = await submit(jobs, "wait", seconds=30)
    waiting = await submit(jobs, "ok")
    while running not in engine.ran:
        await asyncio.sleep(0.01)
    # Another prompt's id leaves the running one alone...
    bus.publish(BusMessage("interrupt", {"prompt_id": waiting}))
    await asyncio.sleep(0.2)
    assert (await jobs.get_job(workspace_id="local", job_id=running)).status == "in_progress"
    # ...its own id stops it, and the queue goes on.
    assert await jobs.request_interrupt(workspace_id="local", prompt_id=running) == [running]
    assert (await wait_finished(jobs, running)).status == "cancelled"
    assert (await wait_finished(jobs, waiting)).status == "completed"


async def test_free_runs_after_the_current_job(stack):
    jobs, bus, engine, worker = stack
    await worker.start()
    pid = await submit(jobs, "wait")
    while pid not in engine.ran:
        await asyncio.sleep(0.01)
    jobs.request_free(unload_models=True)
    await asyncio.sleep(0.1)
    assert engine.freed == []  # not while the job runs
    await wait_finished(jobs, pid, timeout=15)
    for _ in range(100):
        if engine.freed:
            break
        await asyncio.sleep(0.02)
    assert engine.freed == [{"unload_models": True, "free_memory": False}]
    jobs.request_free(free_memory=True)  # idle: at once
    for _ in range(100):
        if len(engine.freed) == 2:
            break
        await asyncio.sleep(0.02)
    assert engine.freed[1] == {"unload_models": False, "free_memory": True}


async def test_stop_fails_the_running_job_with_a_reason(stack):
    jobs, bus, engine, worker = stack
    await worker.start()
    pid = await submit(jobs, "wait", seconds=30)
    while pid not in engine.ran:
        await asyncio.sleep(0.01)
    await worker.stop()
    row = await jobs.get_job(workspace_id="local", job_id=pid)
    assert row.status == "failed" and "shut down" in row.error_message


async def test_an_idle_worker_picks_up_new_work_at_once(stack):
    jobs, bus, engine, worker = stack
    await worker.start()
    slowest = 0.0
    for i in range(10):
        await asyncio.sleep(0.01 * (i % 3))  # land submits at various points of the idle loop
        started = time.monotonic()
        pid = await submit(jobs, "ok")
        await wait_finished(jobs, pid)
        slowest = max(slowest, time.monotonic() - started)
    # Far below the idle poll (5 s): the worker is woken, not polling.
    assert slowest < 1.5


async def test_an_idle_worker_sleeps_instead_of_polling(stack):
    jobs, bus, engine, worker = stack
    claims = 0
    claim = jobs.claim_next_job

    async def counting_claim(**kw):
        nonlocal claims
        claims += 1
        return await claim(**kw)

    jobs.claim_next_job = counting_claim
    await worker.start()
    await asyncio.sleep(0.5)
    assert claims <= 2


async def test_a_result_the_worker_cannot_read_fails_the_job_and_the_loop_goes_on(stack):
    jobs, bus, engine, worker = stack
    ends: list[BusMessage] = []
    bus.add_listener(ends.append, kinds=["execution_error", "executing"])
    await worker.start()
    bad = await submit(jobs, "garbage")
    good = await submit(jobs, "ok")
    row = await wait_finished(jobs, bad)
    assert row.status == "failed" and "AttributeError" in row.error_message
    assert (await wait_finished(jobs, good)).status == "completed"
    mine = [(m.kind, m.data.get("node", "-")) for m in ends if m.prompt_id == bad]
    assert mine[-2:] == [("execution_error", "-"), ("executing", None)]


async def test_a_finish_that_cannot_be_stored_leaves_the_job_to_the_reaper(stack, monkeypatch):
    monkeypatch.setattr("opencomfy.jobs.worker.FINISH_RETRY_DELAYS", (0.01,) * 5)
    jobs, bus, engine, worker = stack
    calls = 0

    def broken_at_first(finish):
        async def finish_once_broken(**kw):
            nonlocal calls
            calls += 1
            if calls <= 5:  # every retry of the first job's finish fails
                raise RuntimeError("database hiccup")
            return await finish(**kw)
        return finish_once_broken

    # The worker stores an end alone, or together with claiming the next job.
    jobs.finish_job = broken_at_first(jobs.finish_job)
    jobs.finish_job_and_claim_next = broken_at_first(jobs.finish_job_and_claim_next)
    await worker.start()
    first = await submit(jobs, "ok")
    second = await submit(jobs, "ok")
    assert (await wait_finished(jobs, second, timeout=30)).status == "completed"
    # The first job's outcome could not be stored; it stays leased until the reaper fails it.
    assert (await jobs.get_job(workspace_id="local", job_id=first)).status == "in_progress"


async def test_a_synchronous_node_holding_the_loop_keeps_its_lease(stack, monkeypatch):
    monkeypatch.setattr("opencomfy.jobs.worker.LEASE_SECONDS", 1.0)
    monkeypatch.setattr("opencomfy.jobs.worker.RENEW_EVERY_SECONDS", 0.1)
    jobs, bus, engine, worker = stack
    await worker.start()
    pid = await submit(jobs, "block", seconds=2.5)
    while pid not in engine.ran:
        await asyncio.sleep(0.01)
    await asyncio.sleep(1.6)  # past the lease, with the worker's loop blocked all along
    assert await jobs.fail_stalled_jobs() == []
    assert (await wait_finished(jobs, pid)).status == "completed"


async def test_a_lost_lease_stops_the_job(stack, monkeypatch):
    monkeypatch.setattr("opencomfy.jobs.worker.RENEW_EVERY_SECONDS", 0.05)
    jobs, bus, engine, worker = stack

    async def never_ours(**kw):
        return False

    jobs.renew_lease = never_ours
    await worker.start()
    pid = await submit(jobs, "wait", seconds=30)
    row = await wait_finished(jobs, pid)
    assert row.status == "cancelled"


async def test_an_interrupt_from_another_workspace_leaves_the_job_alone(stack):
    jobs, bus, engine, worker = stack
    await worker.start()
    pid = await submit(jobs, "wait", seconds=30)
    while pid not in engine.ran:
        await asyncio.sleep(0.01)
    bus.publish(BusMessage("interrupt", {"prompt_id": None}, workspace_id="someone-else"))
    await asyncio.sleep(0.2)
    assert (await jobs.get_job(workspace_id="local", job_id=pid)).status == "in_progress"
    bus.publish(BusMessage("interrupt", {"prompt_id": None}))
    assert (await wait_finished(jobs, pid)).status == "cancelled"


async def test_queue_changes_wake_a_worker_loop_only_while_it_waits(stack, monkeypatch):
    jobs, bus, engine, worker = stack
    from opencomfy.jobs.worker_api import EmbeddedWorkerAPI

    api = EmbeddedWorkerAPI(jobs=jobs, bus=bus)
    loop = asyncio.get_running_loop()
    wakeups = []
    real = loop.call_soon_threadsafe
    monkeypatch.setattr(loop, "call_soon_threadsafe",
                        lambda *a, **kw: (wakeups.append(a), real(*a, **kw))[1])
    changed = BusMessage(kind="queue_changed", data={"queue_remaining": 1})
    await api.wait_for_work(timeout=0.01)  # registers this loop; nothing changed: times out
    for _ in range(3):  # a busy worker: no wake-up, but the change is remembered
        bus.publish(changed)
    assert wakeups == []
    started = time.monotonic()
    await api.wait_for_work(timeout=5)
    assert time.monotonic() - started < 0.5
    waiting = asyncio.ensure_future(api.wait_for_work(timeout=5))
    await asyncio.sleep(0.05)
    bus.publish(changed)
    await asyncio.wait_for(waiting, 1)
    assert len(wakeups) == 1
    started = time.monotonic()
    await api.wait_for_work(timeout=0.1)  # that change was consumed
    assert time.monotonic() - started >= 0.09
    api.close()
