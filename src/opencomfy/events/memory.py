"""The in-process event bus: publish from any thread, delivery on the server's event loop."""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
from typing import Callable, Iterable

from opencomfy.events.base import DROPPABLE_KINDS, BusMessage, EventBus, Subscription

log = logging.getLogger(__name__)


class MemorySubscription(Subscription):
    """A bounded FIFO; when full, the oldest droppable message (progress, preview) goes first,
    then the oldest message of any kind. Only touched on the bus's event loop."""

    def __init__(self, bus: "MemoryEventBus", kinds: frozenset[str] | None, maxsize: int) -> None:
        self._bus = bus
        self.kinds = kinds
        self._maxsize = max(1, maxsize)
        self._buffer: collections.deque[BusMessage] = collections.deque()
        self._waiter: asyncio.Future | None = None
        self._closed = False
        self._dropped = 0

    def wants(self, msg: BusMessage) -> bool:
        return self.kinds is None or msg.kind in self.kinds

    def deliver(self, msg: BusMessage) -> None:
        if self._closed:
            return
        if len(self._buffer) >= self._maxsize:
            self._drop_one()
        self._buffer.append(msg)
        self._wake()

    def _drop_one(self) -> None:
        self._dropped += 1
        for i, queued in enumerate(self._buffer):
            if queued.kind in DROPPABLE_KINDS:
                del self._buffer[i]
                return
        self._buffer.popleft()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def get(self) -> BusMessage:
        while not self._buffer:
            if self._closed:
                raise EOFError("subscription closed")
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._buffer.popleft()

    def get_nowait(self) -> BusMessage | None:
        return self._buffer.popleft() if self._buffer else None

    @property
    def dropped(self) -> int:
        return self._dropped

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._bus._remove(self)
            self._wake()


class MemoryEventBus(EventBus):
    """Delivers on one asyncio loop: the running loop when it is built (or the first
    subscription's). Messages published from other threads wait in one FIFO that a single
    scheduled callback drains on the loop: a burst of engine events costs one wake-up of the
    loop, not one each, and messages from one thread keep their order."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        if loop is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
        self._loop = loop
        self._loop_thread = threading.get_ident() if loop is not None else None
        self._subscriptions: list[MemorySubscription] = []
        self._listeners: list[tuple[Callable[[BusMessage], None], frozenset[str] | None]] = []
        self._foreign: collections.deque[BusMessage] = collections.deque()
        self._foreign_lock = threading.Lock()
        self._drain_scheduled = False

    def _bind(self) -> None:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            self._loop_thread = threading.get_ident()

    def publish(self, msg: BusMessage) -> None:
        loop = self._loop
        if loop is None:
            return  # nobody subscribed yet: nobody to tell
        if threading.get_ident() == self._loop_thread:
            self._deliver(msg)
            return
        with self._foreign_lock:
            self._foreign.append(msg)
            if self._drain_scheduled:
                return
            self._drain_scheduled = True
        try:
            loop.call_soon_threadsafe(self._drain_foreign)
        except RuntimeError:  # the loop is closed: the server is shutting down
            pass

    def _drain_foreign(self) -> None:
        while True:
            with self._foreign_lock:
                if not self._foreign:
                    self._drain_scheduled = False
                    return
                batch = list(self._foreign)
                self._foreign.clear()
            for msg in batch:
                self._deliver(msg)

    def _deliver(self, msg: BusMessage) -> None:
        for sub in list(self._subscriptions):
            if sub.wants(msg):
                sub.deliver(msg)
        for callback, kinds in list(self._listeners):
            if kinds is None or msg.kind in kinds:
                try:
                    callback(msg)
                except Exception:  # one bad listener never stops the others
                    log.exception("event listener failed on %s", msg.kind)

    def subscribe(self, *, kinds: Iterable[str] | None = None, maxsize: int = 10_000) -> Subscription:
        self._bind()
        sub = MemorySubscription(self, frozenset(kinds) if kinds is not None else None, maxsize)
        self._subscriptions.append(sub)
        return sub

    def add_listener(self, callback: Callable[[BusMessage], None], *,
                     kinds: Iterable[str] | None = None) -> Callable[[], None]:
        self._bind()
        entry = (callback, frozenset(kinds) if kinds is not None else None)
        self._listeners.append(entry)

        def remove() -> None:
            if entry in self._listeners:
                self._listeners.remove(entry)

        return remove

    def _remove(self, sub: MemorySubscription) -> None:
        if sub in self._subscriptions:
            self._subscriptions.remove(sub)

    def close(self) -> None:
        for sub in list(self._subscriptions):
            sub.close()
        self._listeners.clear()
