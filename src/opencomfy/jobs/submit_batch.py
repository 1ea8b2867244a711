"""Group commit for submits: prompts that arrive while a commit is in flight share the next one.

One writer task drains the waiting rows into a single transaction; each submitter awaits its
own future and gets its own error (a duplicate id fails only that submit). With nothing in
flight a submit is written at once, so a lone prompt waits for no timer.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable

log = logging.getLogger(__name__)

#: Writes a batch of rows; returns, per row in order, None or the error for that row.
BatchWriter = Callable[[list[Any]], Awaitable[list[BaseException | None]]]


class SubmitBatcher:
    """Queues rows for `write` and resolves each submitter once its batch is committed."""

    def __init__(self, *, write: BatchWriter, max_batch: int = 500) -> None:
        self._write = write
        self._max_batch = max_batch
        self._waiting: list[tuple[Any, asyncio.Future]] = []
        self._writer: asyncio.Task | None = None

    async def submit(self, row: Any) -> None:
        """Return once `row` is committed; raise its error if it could not be written."""
        future = asyncio.get_running_loop().create_future()
        self._waiting.append((row, future))
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._write_all())
        await asyncio.shield(future)  # a client hanging up must not cancel the write

    async def drain(self) -> None:
        """Wait until every queued row has been written."""
        while self._writer is not None:
            await asyncio.shield(self._writer)

    async def _write_all(self) -> None:
        try:
            while self._waiting:
                batch = self._waiting[: self._max_batch]
                del self._waiting[: self._max_batch]
                try:
                    errors = await self._write([row for row, _ in batch])
                except Exception as exc:  # the whole batch failed (database gone...)
                    log.exception("writing %d submitted job(s) failed", len(batch))
                    errors = [exc] * len(batch)
                for (_, future), error in zip(batch, errors, strict=True):
                    if future.done():
                        continue
                    if error is None:
                        future.set_result(None)
                    else:
                        future.set_exception(error)
        finally:
            self._writer = None
