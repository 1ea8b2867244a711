"""The narrow interface between a worker and the rest of the server.

A worker claims a job, keeps its lease alive, publishes events, and finishes the job with
its outputs; it learns of interrupts and /api/free through control messages. Nothing else
crosses this line, so the same worker loop can later run in another process (on a GPU
machine) over an HTTP implementation of `WorkerAPI`.

`EmbeddedWorkerAPI` is the in-process implementation: the worker runs on its own thread and
event loop, and each call hops onto the server's loop (where JobService and the database
live) with `asyncio.run_coroutine_threadsafe`.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Coroutine, Literal

from opencomfy.events.base import CONTROL_KINDS, BusMessage, EventBus

if TYPE_CHECKING:
    from opencomfy.jobs.service import JobService

log = logging.getLogger(__name__)

FinishStatus = Literal["completed", "failed", "cancelled"]


@dataclass(frozen=True)
class WorkerJob:
    """What a worker needs to run one job."""

    prompt_id: str
    number: float
    prompt: dict
    extra_data: dict = field(default_factory=dict)
    outputs_to_execute: list[str] = field(default_factory=list)
    client_id: str | None = None
    workspace_id: str = "local"


@dataclass(frozen=True)
class JobOutcome:
    """How a job ended, as stored with it."""

    status: FinishStatus
    outputs: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)
    messages: list = field(default_factory=list)
    error: dict | None = None


class WorkerAPI(abc.ABC):
    """Everything a worker may ask of the server. Coroutines run on the worker's own loop."""

    @abc.abstractmethod
    async def claim(self, *, worker_id: str, lease_seconds: float) -> WorkerJob | None:
        """Take the next pending job in queue order (None when the queue is empty)."""

    @abc.abstractmethod
    async def wait_for_work(self, *, timeout: float) -> None:
        """Return when the queue may have changed since the previous call returned, or after
        `timeout` seconds (so a change between a failed claim and this wait is not missed)."""

    @abc.abstractmethod
    async def renew_lease(self, *, prompt_id: str, worker_id: str, lease_seconds: float) -> bool:
        """Extend the lease; False means the job is no longer ours (stop running it).
        Called from the lease keeper's own thread and event loop, not the worker's."""

    @abc.abstractmethod
    def publish(self, msg: BusMessage) -> None:
        """Send an event towards the job's websocket clients. Never blocks."""

    @abc.abstractmethod
    async def finish(self, *, prompt_id: str, worker_id: str, outcome: JobOutcome,
                     claim_next_lease_seconds: float | None = None) -> WorkerJob | None:
        """Store the outcome (outputs, status messages, timings) and end the job.

        With `claim_next_lease_seconds`, also claim the next job (as `claim` would) and
        return it: one round trip between jobs instead of two. Raises only when the outcome
        could not be stored; a failed claim just returns None."""

    @abc.abstractmethod
    def on_control(self, callback: Callable[[BusMessage], None]) -> Callable[[], None]:
        """Call `callback` (from any thread) for each control message: "interrupt"
        {"prompt_id"} and "free" {"unload_models", "free_memory"}. Returns an unsubscribe."""


class EmbeddedWorkerAPI(WorkerAPI):
    """`WorkerAPI` over an in-process JobService and event bus.

    Build it on the server's event loop; call its coroutines from the worker's loop.
    """

    def __init__(self, *, jobs: "JobService", bus: EventBus) -> None:
        self._jobs = jobs
        self._bus = bus
        self._server_loop = asyncio.get_running_loop()
        # One signal per worker loop: a queue change marks it, and wakes that loop only while
        # it waits in wait_for_work (waking a busy worker's loop costs both threads a
        # system call and a GIL switch, three times per job); a change between two waits is
        # never missed.
        self._work_signals: dict[asyncio.AbstractEventLoop, _WorkSignal] = {}
        self._remove_queue_listener = bus.add_listener(self._on_queue_changed,
                                                       kinds=("queue_changed",))

    def close(self) -> None:
        self._remove_queue_listener()

    async def _on_server(self, coro: Coroutine[Any, Any, Any]) -> Any:
        future = asyncio.run_coroutine_threadsafe(coro, self._server_loop)
        return await asyncio.wrap_future(future)

    async def claim(self, *, worker_id: str, lease_seconds: float) -> WorkerJob | None:
        claimed = await self._on_server(
            self._jobs.claim_next_job(worker_id=worker_id, lease_seconds=lease_seconds))
        return _worker_job(claimed) if claimed is not None else None

    def _on_queue_changed(self, msg: BusMessage) -> None:
        for loop, signal in list(self._work_signals.items()):
            with signal.lock:
                signal.changed = True
                waiting = signal.waiting
            if not waiting:
                continue
            try:
                loop.call_soon_threadsafe(signal.event.set)
            except RuntimeError:  # that worker's loop is gone
                self._work_signals.pop(loop, None)

    async def wait_for_work(self, *, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        signal = self._work_signals.get(loop)
        if signal is None:
            signal = self._work_signals[loop] = _WorkSignal()
        with signal.lock:
            if signal.changed:  # changed since the previous call returned
                signal.changed = False
                return
            signal.waiting = True
            signal.event.clear()
        try:
            await asyncio.wait_for(signal.event.wait(), timeout)
        except asyncio.TimeoutError:
            pass
        finally:
            # A change that lands now is older than our return: the caller's next claim sees it.
            with signal.lock:
                signal.waiting = False
                signal.changed = False

    async def renew_lease(self, *, prompt_id: str, worker_id: str, lease_seconds: float) -> bool:
        return bool(await self._on_server(self._jobs.renew_lease(
            prompt_id=prompt_id, worker_id=worker_id, lease_seconds=lease_seconds)))

    def publish(self, msg: BusMessage) -> None:
        self._bus.publish(msg)

    async def finish(self, *, prompt_id: str, worker_id: str, outcome: JobOutcome,
                     claim_next_lease_seconds: float | None = None) -> WorkerJob | None:
        claimed = await self._on_server(self._finish_then_claim(
            prompt_id=prompt_id, worker_id=worker_id, outcome=outcome,
            lease_seconds=claim_next_lease_seconds))
        return _worker_job(claimed) if claimed is not None else None

    async def _finish_then_claim(self, *, prompt_id: str, worker_id: str, outcome: JobOutcome,
                                 lease_seconds: float | None):
        """On the server loop: store the end, then (optionally) claim the next job, both in
        one transaction."""
        if lease_seconds is None:
            await self._jobs.finish_job(
                prompt_id=prompt_id, worker_id=worker_id, status=outcome.status,
                outputs=outcome.outputs, meta=outcome.meta, messages=outcome.messages,
                error=outcome.error)
            return None
        _, claimed = await self._jobs.finish_job_and_claim_next(
            prompt_id=prompt_id, worker_id=worker_id, status=outcome.status,
            lease_seconds=lease_seconds, outputs=outcome.outputs, meta=outcome.meta,
            messages=outcome.messages, error=outcome.error)
        return claimed

    def on_control(self, callback: Callable[[BusMessage], None]) -> Callable[[], None]:
        # add_listener must run on the server loop; the callback then runs there too.
        if _in_loop(self._server_loop):
            remove = self._bus.add_listener(callback, kinds=CONTROL_KINDS)
        else:
            remove = asyncio.run_coroutine_threadsafe(
                self._add_listener(callback), self._server_loop).result(timeout=10)

        def unsubscribe() -> None:
            try:
                self._server_loop.call_soon_threadsafe(remove)
            except RuntimeError:
                pass

        return unsubscribe

    async def _add_listener(self, callback: Callable[[BusMessage], None]) -> Callable[[], None]:
        return self._bus.add_listener(callback, kinds=CONTROL_KINDS)


class _WorkSignal:
    """Whether the queue changed since a worker loop's last wait_for_work returned, and the
    event that loop sleeps on while it waits. `changed` and `waiting` are read and written
    under `lock` (the server loop sets, the worker loop waits); `event` is the worker loop's."""

    __slots__ = ("lock", "changed", "waiting", "event")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.changed = False
        self.waiting = False
        self.event = asyncio.Event()


def _worker_job(claimed: Any) -> WorkerJob:
    return WorkerJob(
        prompt_id=claimed.prompt_id,
        number=claimed.number,
        prompt=claimed.prompt,
        extra_data=dict(claimed.extra_data or {}),
        outputs_to_execute=list(claimed.outputs_to_execute or []),
        client_id=claimed.client_id,
        workspace_id=getattr(claimed, "workspace_id", None) or "local",
    )


def _in_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False
