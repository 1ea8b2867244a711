"""`TaskService`: create task rows and run their work in this process, with progress.

A task's work is a coroutine `work(ctx) -> result dict`. It raises `TaskFailed(reason)` for
an expected failure (the reason becomes `error_message`); anything else fails the task with
a generic message and is logged. Tasks left unfinished by a stopped or killed server are
failed with a reason at the next start (`recover_after_restart`).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Sequence

from opencomfy.db.database import Database
from opencomfy.tasks import repository as repo
from opencomfy.tasks import transitions as tr

log = logging.getLogger(__name__)

RESTART_REASON = "the server restarted while the task was unfinished"
STOP_REASON = "the server stopped while the task was running"
PROGRESS_INTERVAL_S = 0.25


class TaskFailed(Exception):
    """Expected failure of a task's work; the message is shown as the task's error."""


class TaskCancelled(TaskFailed):
    """The task was asked to stop."""


@dataclass
class TaskContext:
    """What a running task's work sees: its row's ids, payload, and a progress reporter."""

    task_id: str
    workspace_id: str
    payload: dict
    service: "TaskService"
    cancel_event: asyncio.Event = field(default_factory=asyncio.Event)
    _last_write: float = 0.0

    @property
    def cancelled(self) -> bool:
        return self.cancel_event.is_set()

    def check_cancelled(self) -> None:
        if self.cancel_event.is_set():
            raise TaskCancelled("cancelled")

    async def progress(self, fraction: float, *, details: dict | None = None, force: bool = False) -> None:
        """Record progress (0..1) and optional partial result, at most a few times a second."""
        now = time.monotonic()
        if not force and now - self._last_write < PROGRESS_INTERVAL_S:
            return
        self._last_write = now
        async with self.service.db.write() as conn:
            await repo.set_progress(conn, task_id=self.task_id, progress=max(0.0, min(1.0, fraction)),
                                    result=details)


Work = Callable[[TaskContext], Awaitable[dict]]


class TaskService:
    """Background tasks of every workspace; one asyncio task per running row."""

    def __init__(self, *, db: Database) -> None:
        self.db = db
        self._contexts: dict[str, TaskContext] = {}
        self._runners: dict[str, asyncio.Task] = {}

    async def recover_after_restart(self) -> int:
        """Fail every task a previous process left created or running; returns how many."""
        async with self.db.write() as conn:
            moved = await tr.transition(conn, task_ids=None, to=tr.FAILED, error_message=RESTART_REASON)
        if moved:
            log.warning("failed %d task(s) left unfinished by the previous run", moved)
        return moved

    async def submit(self, *, workspace_id: str, task_name: str, payload: dict, work: Work,
                     idempotency_key: str | None = None) -> tuple[dict, bool]:
        """Create a task row and start its work; an unfinished task with the same key is
        returned instead (created False)."""
        task_id = str(uuid.uuid4())
        async with self.db.write() as conn:
            if idempotency_key:
                existing = await repo.find_active_by_key(conn, workspace_id=workspace_id,
                                                         task_name=task_name,
                                                         idempotency_key=idempotency_key)
                if existing:
                    return existing, False
            now = tr.now_ms()
            row = {"id": task_id, "workspace_id": workspace_id, "task_name": task_name,
                   "idempotency_key": idempotency_key or task_id, "status": tr.CREATED,
                   "payload": payload, "result": None, "error_message": None, "progress": 0.0,
                   "create_time": now, "update_time": now, "started_at": None, "completed_at": None}
            await repo.insert_task(conn, row)
        ctx = TaskContext(task_id=task_id, workspace_id=workspace_id, payload=payload, service=self)
        self._contexts[task_id] = ctx
        self._runners[task_id] = asyncio.create_task(self._run(ctx, work), name=f"task-{task_name}")
        return row, True

    async def _run(self, ctx: TaskContext, work: Work) -> None:
        try:
            async with self.db.write() as conn:
                if not await tr.transition(conn, task_ids=[ctx.task_id], to=tr.RUNNING):
                    return
            try:
                result = await work(ctx)
            except TaskFailed as exc:
                await self._finish(ctx.task_id, tr.FAILED, error_message=str(exc) or "failed")
            except asyncio.CancelledError:
                await asyncio.shield(self._finish(ctx.task_id, tr.FAILED, error_message=STOP_REASON))
                raise
            except Exception as exc:
                log.exception("task %s failed", ctx.task_id)
                await self._finish(ctx.task_id, tr.FAILED,
                                   error_message=f"internal error ({type(exc).__name__})")
            else:
                await self._finish(ctx.task_id, tr.COMPLETED, result=result)
        finally:
            self._contexts.pop(ctx.task_id, None)
            self._runners.pop(ctx.task_id, None)

    async def _finish(self, task_id: str, status: str, **fields: Any) -> None:
        async with self.db.write() as conn:
            await tr.transition(conn, task_ids=[task_id], to=status, **fields)

    def request_cancel(self, task_id: str) -> bool:
        """Ask a running task to stop at its next check; False when it is not running here."""
        ctx = self._contexts.get(task_id)
        if ctx is None:
            return False
        ctx.cancel_event.set()
        return True

    def running_ids(self, task_name: str | None = None) -> list[str]:
        return [tid for tid, task in self._runners.items()
                if task_name is None or task.get_name() == f"task-{task_name}"]

    async def wait(self, task_id: str) -> None:
        """Wait until the task's work has ended (tests, shutdown)."""
        runner = self._runners.get(task_id)
        if runner is not None:
            await asyncio.wait([runner])

    async def get(self, *, workspace_id: str, task_id: str) -> dict | None:
        async with self.db.read() as conn:
            return await repo.get_task(conn, workspace_id=workspace_id, task_id=task_id)

    async def page(self, *, workspace_id: str, task_name: str | None = None,
                   idempotency_key: str | None = None, statuses: Sequence[str] | None = None,
                   created_after: int | None = None, created_before: int | None = None,
                   ascending: bool = False, offset: int = 0, limit: int = 20) -> tuple[list[dict], int]:
        async with self.db.read() as conn:
            return await repo.page_tasks(conn, workspace_id=workspace_id, task_name=task_name,
                                         idempotency_key=idempotency_key, statuses=statuses,
                                         created_after=created_after, created_before=created_before,
                                         ascending=ascending, offset=offset, limit=limit)

    async def close(self) -> None:
        """Stop every running task; each is failed with STOP_REASON."""
        runners = list(self._runners.values())
        for runner in runners:
            runner.cancel()
        if runners:
            await asyncio.gather(*runners, return_exceptions=True)
