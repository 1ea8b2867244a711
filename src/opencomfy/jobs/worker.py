"""The embedded worker: one thread with its own event loop that runs jobs through the engine.

The worker reaches the server only through `WorkerAPI` (worker_api.py). The engine, and with
it torch, is imported on the worker's thread, never on the API side.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
import traceback
import uuid
from typing import TYPE_CHECKING, Any, Callable

from opencomfy.events.base import BusMessage
from opencomfy.files.workspace_roots import use_workspace
from opencomfy.jobs.sink import BusEventSink
from opencomfy.jobs.worker_api import EmbeddedWorkerAPI, FinishStatus, JobOutcome, WorkerAPI, WorkerJob

if TYPE_CHECKING:
    from opencomfy.config import Config
    from opencomfy.engine import NodeRegistry
    from opencomfy.events.base import EventBus
    from opencomfy.jobs.service import JobService

log = logging.getLogger(__name__)

LEASE_SECONDS = 60.0
RENEW_EVERY_SECONDS = 15.0
#: How long an idle worker sleeps before looking at the queue anyway (a missed wake-up).
IDLE_POLL_SECONDS = 5.0
#: Pauses between attempts to store a job's end (the database may be briefly unavailable).
FINISH_RETRY_DELAYS = (0.2, 0.4, 0.8, 1.6, 3.2)

_RESULT_TO_STATUS: dict[str, FinishStatus] = {"success": "completed", "error": "failed",
                                              "interrupted": "cancelled"}


class WorkerRunner:
    """The job loop of one worker, independent of how it reaches the server.

    Runs on the loop it is started on; `request_stop()` and control messages may come from
    any thread.
    """

    def __init__(self, *, api: WorkerAPI, engine: Any, worker_id: str) -> None:
        self.api = api
        self.engine = engine
        self.worker_id = worker_id
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._lock = threading.Lock()
        self._stopping = False
        self._current: tuple[str, Any, str] | None = None  # (prompt_id, InterruptFlag, workspace)
        # Interrupts aimed at a prompt that was not running yet (it may be claimed next).
        self._early_interrupts: collections.deque[str] = collections.deque(maxlen=64)
        # /api/free requests not yet applied, by asking workspace: {unload_models, free_memory}.
        self._pending_free: dict[str, dict[str, bool]] = {}
        self._lease = LeaseKeeper(api=api, worker_id=worker_id)
        self.jobs_run = 0

    # -- control (any thread) -------------------------------------------------------------

    def on_control(self, msg: BusMessage) -> None:
        data = msg.data if isinstance(msg.data, dict) else {}
        if msg.kind == "interrupt":
            self.interrupt(data.get("prompt_id"), workspace_id=msg.workspace_id)
        elif msg.kind == "free":
            with self._lock:
                pending = self._pending_free.setdefault(
                    msg.workspace_id, {"unload_models": False, "free_memory": False})
                for key in pending:
                    pending[key] = pending[key] or bool(data.get(key))
            self._poke()

    def interrupt(self, prompt_id: str | None = None, *, workspace_id: str | None = None) -> bool:
        """Stop the running job: only if it is `prompt_id`, when given; only if it belongs to
        `workspace_id`, when given. True if one was hit."""
        with self._lock:
            current = self._current
            if (current is not None and (prompt_id is None or prompt_id == current[0])
                    and (workspace_id is None or workspace_id == current[2])):
                current[1].set()
                return True
            if prompt_id is not None:
                self._early_interrupts.append(prompt_id)
            return False

    def request_stop(self) -> None:
        self._stopping = True
        self.interrupt()
        self._poke()

    def _poke(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            try:
                loop.call_soon_threadsafe(wake.set)
            except RuntimeError:
                pass

    # -- the loop ----------------------------------------------------------------------------

    async def run_forever(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._lease.start()
        try:
            await self._run_until_stopped()
        finally:
            self._lease.stop()

    async def _run_until_stopped(self) -> None:
        assert self._wake is not None
        # The job claimed together with storing the previous one's end (one round trip).
        claimed: WorkerJob | None = None
        while not self._stopping or claimed is not None:
            self._wake.clear()  # before claiming: a control message from now on wakes us
            claim_started = time.perf_counter()
            job, claimed = claimed, None
            if job is None:
                try:
                    job = await self.api.claim(worker_id=self.worker_id,
                                               lease_seconds=LEASE_SECONDS)
                except Exception:
                    log.exception("worker %s could not claim a job", self.worker_id)
                    await self._idle(1.0)
                    continue
            if job is None:
                self._apply_free(next_workspace=None)
                await self._idle(IDLE_POLL_SECONDS)
                continue
            self._apply_free(next_workspace=job.workspace_id)
            try:
                claimed = await self.run_job(job, claimed_in=time.perf_counter() - claim_started)
            except Exception as exc:  # a bug of ours: end this job visibly, keep the loop
                log.exception("the worker failed on prompt %s", job.prompt_id)
                await self._fail_job(job, exc)

    async def _idle(self, timeout: float) -> None:
        """Wait for new work, a control message, or the timeout."""
        assert self._wake is not None
        waiters = [asyncio.ensure_future(self.api.wait_for_work(timeout=timeout)),
                   asyncio.ensure_future(self._wake.wait())]
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    def _apply_free(self, *, next_workspace: str | None) -> None:
        """Apply the /api/free requests that may run now, between jobs, before a job of
        `next_workspace` (None: the queue is empty).

        A workspace's cached outputs go at once: they are its own. Unloading models and
        freeing memory touch what every workspace's jobs use, so they wait until the job
        about to run is the asker's own or none is: one tenant cannot make another's queued
        jobs reload their models (in single-user mode every job is the asker's)."""
        now: dict[str, dict[str, bool]] = {}
        with self._lock:
            pending, self._pending_free = self._pending_free, {}
            for ws, asked in pending.items():
                if (asked["unload_models"] or asked["free_memory"]) and next_workspace not in (None, ws):
                    self._pending_free[ws] = asked  # the caches now, the rest later
                    now[ws] = {"unload_models": False, "free_memory": False}
                else:
                    now[ws] = asked
        for ws, asked in now.items():
            try:
                self.engine.free(**asked, scope=ws)
                if asked["unload_models"]:
                    # Model caches live with the nodes (ComfyUI's model_management), not the engine.
                    from opencomfy.compat.comfy import model_management

                    model_management.unload_all_models()
            except Exception:
                log.exception("freeing memory failed")

    async def run_job(self, job: WorkerJob, claimed_in: float = 0.0) -> WorkerJob | None:
        """Run one claimed job to its end; every failure of the job ends it visibly.

        Returns the next job when it could be claimed in the same call that stored this
        one's end (not while stopping)."""
        started = time.perf_counter()
        interrupt = _new_interrupt_flag()
        with self._lock:
            self._current = (job.prompt_id, interrupt, job.workspace_id)
            if job.prompt_id in self._early_interrupts or self._stopping:
                interrupt.set()
        sink = BusEventSink(self.api.publish, prompt_id=job.prompt_id,
                            client_id=job.client_id, workspace_id=job.workspace_id)
        self._lease.hold(job, interrupt)
        try:
            outcome = await self._execute(job, sink, interrupt)
        finally:
            self._lease.release()
            with self._lock:
                self._current = None
        ran = time.perf_counter()
        with self._lock:
            claim_next = not self._stopping  # a waiting /free runs before the claimed job
        next_job = await self._finish(job, outcome, claim_next=claim_next)
        self.jobs_run += 1
        if log.isEnabledFor(logging.DEBUG):
            log.debug("prompt %s %s: claim %.1f ms, run %.1f ms, finish %.1f ms", job.prompt_id,
                      outcome.status, claimed_in * 1e3, (ran - started) * 1e3,
                      (time.perf_counter() - ran) * 1e3)
        # History is stored; only now may clients learn that the prompt is done.
        sink.send("executing", {"node": None, "prompt_id": job.prompt_id})
        return next_job

    async def _execute(self, job: WorkerJob, sink: BusEventSink, interrupt: Any) -> JobOutcome:
        try:
            # folder_paths resolves input/output/temp to this job's workspace (per-workspace
            # layout); the engine's tasks inherit the context variable.
            with use_workspace(job.workspace_id):
                result = await self.engine.run(
                    job.prompt, prompt_id=job.prompt_id, extra_data=job.extra_data,
                    execute_outputs=job.outputs_to_execute, sink=sink, interrupt=interrupt,
                    cache_scope=job.workspace_id)  # a workspace never gets another's cached outputs
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 - even a node's sys.exit() must not end the
            # worker: the engine itself failed, so fail the job and keep going.
            log.exception("engine failed on prompt %s", job.prompt_id)
            error = _worker_error(job.prompt_id, exc)
            sink.send("execution_error", error)
            return JobOutcome(status="failed", messages=[("execution_error", error)], error=error)
        status: FinishStatus = _RESULT_TO_STATUS.get(result.status, "failed")
        error = result.error
        if status == "cancelled" and self._stopping:
            status = "failed"
            error = {**(error or {}), "prompt_id": job.prompt_id,
                     "exception_type": "ServerShutdown",
                     "exception_message": "the server shut down while this job was running"}
        return JobOutcome(status=status, outputs=result.outputs or {}, meta=result.meta or {},
                          messages=list(result.messages or []), error=error)

    async def _fail_job(self, job: WorkerJob, exc: BaseException) -> None:
        error = _worker_error(job.prompt_id, exc)
        sink = BusEventSink(self.api.publish, prompt_id=job.prompt_id,
                            client_id=job.client_id, workspace_id=job.workspace_id)
        try:
            sink.send("execution_error", error)
            await self._finish(job, JobOutcome(status="failed", error=error,
                                               messages=[("execution_error", error)]))
            sink.send("executing", {"node": None, "prompt_id": job.prompt_id})
        except Exception:
            log.exception("could not fail prompt %s; its lease will run out", job.prompt_id)

    async def _finish(self, job: WorkerJob, outcome: JobOutcome, *,
                      claim_next: bool = False) -> WorkerJob | None:
        lease = LEASE_SECONDS if claim_next else None
        for attempt, delay in enumerate(FINISH_RETRY_DELAYS, 1):
            try:
                return await self.api.finish(prompt_id=job.prompt_id, worker_id=self.worker_id,
                                             outcome=outcome, claim_next_lease_seconds=lease)
            except Exception:
                log.exception("could not store the end of prompt %s (attempt %d)",
                              job.prompt_id, attempt)
                await asyncio.sleep(delay)
        # The lease runs out and the server fails the job as stalled: never lost, never stuck.
        return None


class LeaseKeeper:
    """Renews the running job's lease from its own thread.

    Synchronous nodes run on the worker's event loop and may hold it for minutes (a sampler);
    a renewal scheduled on that loop would starve and the job would be failed as stalled while
    it still runs. This thread, with its own small loop, never waits on node code.
    """

    def __init__(self, *, api: WorkerAPI, worker_id: str) -> None:
        self.api = api
        self.worker_id = worker_id
        self._lock = threading.Lock()
        self._held: tuple[WorkerJob, Any] | None = None   # (job, InterruptFlag)
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stopped.clear()
        self._thread = threading.Thread(target=self._run, name="opencomfy-lease", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()

    def hold(self, job: WorkerJob, interrupt: Any) -> None:
        with self._lock:
            self._held = (job, interrupt)

    def release(self) -> None:
        with self._lock:
            self._held = None

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        try:
            while not self._stopped.wait(RENEW_EVERY_SECONDS):
                with self._lock:
                    held = self._held
                if held is not None:
                    loop.run_until_complete(self._renew(*held))
        finally:
            loop.close()

    async def _renew(self, job: WorkerJob, interrupt: Any) -> None:
        try:
            still_ours = await self.api.renew_lease(
                prompt_id=job.prompt_id, worker_id=self.worker_id, lease_seconds=LEASE_SECONDS)
        except Exception:
            log.exception("lease renewal failed for prompt %s", job.prompt_id)
            return
        if not still_ours:
            with self._lock:
                current = self._held
            if current is not None and current[0] is job:
                log.warning("lost the lease on prompt %s; stopping it", job.prompt_id)
                interrupt.set()


def _new_interrupt_flag() -> Any:
    from opencomfy.engine import InterruptFlag  # on the worker's side only

    return InterruptFlag()


def _worker_error(prompt_id: str, exc: BaseException) -> dict:
    return {
        "prompt_id": prompt_id,
        "node_id": None,
        "node_type": None,
        "executed": [],
        "exception_message": f"{type(exc).__name__}: {exc}",
        "exception_type": type(exc).__name__,
        "traceback": traceback.format_exception(exc),
        "current_inputs": {},
        "current_outputs": {},
        "timestamp": int(time.time() * 1000),
    }


class EmbeddedWorker:
    """Runs a `WorkerRunner` on its own thread and event loop inside the server process.
    (Jobs whose lease runs out are failed by JobService's own reaper.)"""

    def __init__(self, *, config: "Config", jobs: "JobService", registry: "NodeRegistry",
                 bus: "EventBus | None" = None,
                 engine_factory: Callable[[], Any] | None = None) -> None:
        """`engine_factory` builds the engine on the worker's thread (default: the real
        Engine over `registry` with the configured cache)."""
        self.config = config
        self.jobs = jobs
        self.registry = registry
        self.bus = bus if bus is not None else _bus_of(jobs)
        self.worker_id = f"embedded-{uuid.uuid4().hex[:8]}"
        self.runner: WorkerRunner | None = None
        self._api: EmbeddedWorkerAPI | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._start_error: BaseException | None = None
        self._engine_factory = engine_factory or self._build_engine

    async def start(self) -> None:
        """Start the thread; returns once the engine is built and the worker listens."""
        self._api = EmbeddedWorkerAPI(jobs=self.jobs, bus=self.bus)
        self._thread = threading.Thread(target=self._thread_main, name="opencomfy-worker",
                                        daemon=True)
        self._thread.start()
        await asyncio.to_thread(self._ready.wait, 120)
        if self._start_error is not None:
            raise RuntimeError("the worker could not start") from self._start_error

    def _thread_main(self) -> None:
        try:
            asyncio.run(self._thread_async())
        except BaseException as exc:  # reported by start(), or logged if it dies later
            if not self._ready.is_set():
                self._start_error = exc
                self._ready.set()
            else:
                log.exception("the worker thread died")

    def _build_engine(self) -> Any:
        from opencomfy.engine import Engine

        return Engine(self.registry, cache_mode=self.config.cache_mode,
                      lru_size=self.config.cache_lru_size)

    async def _thread_async(self) -> None:
        engine = self._engine_factory()
        assert self._api is not None
        self.runner = WorkerRunner(api=self._api, engine=engine, worker_id=self.worker_id)
        remove = self._api.on_control(self.runner.on_control)
        self._ready.set()
        try:
            while True:
                try:
                    await self.runner.run_forever()
                    return  # asked to stop
                except Exception:
                    log.exception("the worker loop failed; restarting it")
                    await asyncio.sleep(1.0)
        finally:
            remove()

    async def stop(self, timeout: float = 10.0) -> None:
        """Interrupt the running job, end the loop, and wait for the thread."""
        if self.runner is not None:
            self.runner.request_stop()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, timeout)
            if self._thread.is_alive():
                log.warning("the worker thread did not stop within %.0f s", timeout)
        if self._api is not None:
            self._api.close()


def _bus_of(jobs: Any) -> "EventBus":
    for name in ("bus", "_bus"):
        bus = getattr(jobs, name, None)
        if bus is not None:
            return bus
    raise ValueError("EmbeddedWorker needs an event bus (bus=, or JobService.bus)")
