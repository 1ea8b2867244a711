"""``PromptServer.instance.prompt_queue``: ComfyUI's ``PromptQueue`` as a view of our queue.

Custom nodes read the queue (``get_current_queue()``, ``get_tasks_remaining()``,
``get_history()``) and sometimes change it (``put``, ``wipe_queue``, ``delete_queue_item``)
synchronously, from three places: a node running on the worker's thread, an HTTP handler on
the server's loop, or a thread of their own. The queue is :class:`JobService`, which lives
on the server's loop, so every call is bridged:

- from another thread: the coroutine runs on the server's loop
  (``run_coroutine_threadsafe``) and the caller waits for it, with a timeout;
- on the server's loop itself (a pack's route calling these sync methods): waiting there
  would deadlock, so reads run on a short-lived thread with its own event loop and its own
  database connection (no pool shared across loops), and writes are scheduled on the loop
  and return at once (they take effect before the loop's next turn is over).

The workspace is the one the calling code runs as (``files.workspace_roots``: the job's on
the worker, the request's in a handler), "local" where none is known. Shapes are ComfyUI's:
queue items ``(number, prompt_id, prompt, extra_data, outputs_to_execute)``, history as
``GET /history`` gives it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from typing import TYPE_CHECKING, Any, Awaitable, Callable, TypeVar, cast

from opencomfy.jobs import comfy_format as cf
from opencomfy.jobs.reads import JobReads

if TYPE_CHECKING:
    from opencomfy.jobs.service import JobService

log = logging.getLogger(__name__)

T = TypeVar("T")

#: How long a caller off the loop waits for the queue before giving up.
CALL_TIMEOUT_SECONDS = 30.0
LOCAL_WORKSPACE = "local"


class QueueUnavailable(RuntimeError):
    """The queue could not be reached (no server loop, or it did not answer in time)."""


def _workspace() -> str:
    from opencomfy.files.workspace_roots import current_workspace

    return current_workspace() or LOCAL_WORKSPACE


def queue_item(row) -> tuple:
    """ComfyUI's queue tuple from a job row."""
    return (cf.number_value(row.number), row.id, json.loads(row.prompt),
            json.loads(row.extra_data), json.loads(row.outputs_to_execute))


class _DetachedDatabase:
    """``Database.read()`` over a throwaway engine, for reads on a private event loop."""

    def __init__(self, url) -> None:
        self.url = url

    @contextlib.asynccontextmanager
    async def read(self):
        from sqlalchemy.ext.asyncio import create_async_engine
        from sqlalchemy.pool import NullPool

        engine = create_async_engine(self.url, poolclass=NullPool)
        try:
            async with engine.connect() as conn:
                yield conn
        finally:
            await engine.dispose()


class PromptQueueView:
    """ComfyUI's ``PromptQueue`` API over :class:`JobService` (see the module doc)."""

    def __init__(self, *, jobs: "JobService", loop: asyncio.AbstractEventLoop) -> None:
        self.jobs = jobs
        self.loop = loop
        # Packs sometimes hold ComfyUI's queue lock around their reads; ours guards nothing.
        self.mutex = threading.RLock()
        self._detached = JobReads()
        self._detached.db = cast(Any, _DetachedDatabase(jobs.db.engine.url))
        self._pending_writes: set[asyncio.Task] = set()

    # -- bridging ---------------------------------------------------------------------------
    def _on_loop(self) -> bool:
        try:
            return asyncio.get_running_loop() is self.loop
        except RuntimeError:
            return False

    def _read(self, fn: Callable[[JobReads], Awaitable[T]]) -> T:
        if self._on_loop():
            return _run_on_private_loop(lambda: fn(self._detached))
        return self._wait(fn(self.jobs))

    def _wait(self, coro: Awaitable[T]) -> T:
        if self.loop.is_closed():
            _close(coro)
            raise QueueUnavailable("the server's event loop is closed")
        future = asyncio.run_coroutine_threadsafe(_as_coroutine(coro), self.loop)
        try:
            return future.result(CALL_TIMEOUT_SECONDS)
        except TimeoutError:
            future.cancel()
            raise QueueUnavailable(f"the queue did not answer within {CALL_TIMEOUT_SECONDS} s") from None

    def _write(self, coro: Awaitable[T]) -> T | None:
        """Run a change: waited for off the loop; on the loop, scheduled (returns None)."""
        if not self._on_loop():
            return self._wait(coro)
        task = self.loop.create_task(_as_coroutine(coro))
        self._pending_writes.add(task)
        task.add_done_callback(self._write_done)
        return None

    def _write_done(self, task: asyncio.Task) -> None:
        self._pending_writes.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("a custom node's queue change failed: %s", task.exception())

    # -- the queue --------------------------------------------------------------------------
    def get_current_queue(self) -> tuple[list, list]:
        """``(running items, pending items)``, pending in the order they will run."""
        workspace = _workspace()

        async def snapshot(reads: JobReads):
            return await reads.queue_snapshot(workspace_id=workspace)

        running, pending = self._read(snapshot)
        return [queue_item(r) for r in running], [queue_item(r) for r in pending]

    def get_current_queue_volatile(self) -> tuple[list, list]:
        """As :meth:`get_current_queue` (ComfyUI's skips a deep copy; ours are fresh)."""
        return self.get_current_queue()

    def get_tasks_remaining(self) -> int:
        workspace = _workspace()

        async def count(reads: JobReads) -> int:
            return await reads.queue_remaining(workspace_id=workspace)

        return self._read(count)

    @property
    def queue(self) -> list:
        """The pending items (ComfyUI's heap list; ours in run order, a valid heap)."""
        return self.get_current_queue()[1]

    @property
    def currently_running(self) -> dict:
        """``{index: item}`` of the running items, as ComfyUI keys them."""
        return dict(enumerate(self.get_current_queue()[0]))

    def put(self, item) -> None:
        """Queue ``(number, prompt_id, prompt, extra_data, outputs_to_execute[, sensitive])``.

        As in ComfyUI the prompt is not validated here: callers validate first."""
        number, prompt_id, prompt, extra_data, outputs = item[:5]
        extra = dict(extra_data or {})
        if len(item) > 5 and isinstance(item[5], dict):
            extra.update(item[5])  # the service keeps sensitive keys apart again
        self._write(self.jobs.submit(
            workspace_id=_workspace(), prompt=prompt, outputs_to_execute=list(outputs),
            prompt_id=str(prompt_id) if prompt_id else None, number=float(number),
            extra_data=extra))

    def wipe_queue(self) -> None:
        self._write(self.jobs.clear_pending(workspace_id=_workspace()))

    def delete_queue_item(self, function: Callable[[tuple], bool]) -> bool:
        """Remove the first pending item for which ``function(item)`` is true."""
        for item in self.get_current_queue()[1]:
            if function(item):
                self._write(self.jobs.delete_pending(workspace_id=_workspace(),
                                                     prompt_ids=[item[1]]))
                return True
        return False

    def get(self, timeout=None):
        raise NotImplementedError("PromptQueue.get: opencomfy's worker takes jobs off the queue "
                                  "itself; custom nodes cannot claim them")

    def task_done(self, *args, **kwargs):
        raise NotImplementedError("PromptQueue.task_done: opencomfy's worker records every "
                                  "job's end itself; custom nodes cannot finish jobs")

    # -- history ----------------------------------------------------------------------------
    def get_history(self, prompt_id=None, max_items=None, offset=-1, map_function=None) -> dict:
        """``{prompt_id: entry}`` as ``GET /history`` (all, a window, or one id)."""
        workspace = _workspace()

        async def rows(reads: JobReads) -> list:
            if prompt_id is not None:
                row = await reads.history_entry(workspace_id=workspace, prompt_id=str(prompt_id))
                return [row] if row is not None else []
            return await reads.history_page(workspace_id=workspace, max_items=max_items,
                                            offset=offset)

        history = json.loads(cf.history_json(self._read(rows)))
        if map_function is not None:
            history = {key: map_function(entry) for key, entry in history.items()}
        return history

    def wipe_history(self) -> None:
        self._write(self.jobs.delete_history(workspace_id=_workspace(), prompt_ids=None))

    def delete_history_item(self, id_to_delete) -> None:
        self._write(self.jobs.delete_history(workspace_id=_workspace(),
                                             prompt_ids=[str(id_to_delete)]))

    # -- /free ------------------------------------------------------------------------------
    def set_flag(self, name: str, data) -> None:
        """ComfyUI's /free flags ("unload_models", "free_memory") for the worker."""
        if name not in ("unload_models", "free_memory"):
            log.debug("queue flag %r ignored", name)
            return
        workspace, flag = _workspace(), bool(data)

        def request() -> None:
            self.jobs.request_free(workspace_id=workspace,
                                   unload_models=flag and name == "unload_models",
                                   free_memory=flag and name == "free_memory")

        if self._on_loop():
            request()
        else:
            self.loop.call_soon_threadsafe(request)


async def _as_coroutine(awaitable: Awaitable[T]) -> T:
    return await awaitable


def _close(awaitable) -> None:
    close = getattr(awaitable, "close", None)
    if close is not None:
        close()  # never awaited: keep Python from warning about it


def _run_on_private_loop(factory: Callable[[], Awaitable[T]]) -> T:
    """Run ``factory()`` to completion on a new thread with its own loop; wait for it."""
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["value"] = asyncio.run(_as_coroutine(factory()))
        except BaseException as exc:  # handed back to the caller's thread
            result["error"] = exc

    thread = threading.Thread(target=target, name="opencomfy-queue-read", daemon=True)
    thread.start()
    thread.join(CALL_TIMEOUT_SECONDS)
    if thread.is_alive():
        raise QueueUnavailable(f"the queue did not answer within {CALL_TIMEOUT_SECONDS} s")
    if "error" in result:
        raise result["error"]
    return result["value"]


def attach_prompt_queue(jobs: "JobService") -> PromptQueueView | None:
    """Give ``PromptServer.instance`` a queue view over ``jobs`` (called on the server's loop
    by the composition root). Returns the view, or None when no PromptServer exists."""
    from opencomfy.compat.server import PromptServer

    instance = PromptServer.instance
    if instance is None:
        return None
    loop = asyncio.get_running_loop()
    view = PromptQueueView(jobs=jobs, loop=loop)
    instance.attach(prompt_queue=view, loop=loop)
    return view
