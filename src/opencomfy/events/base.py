"""The event bus interface and its message.

Producers (the worker thread, JobService, HTTP handlers) `publish` messages from any thread
without blocking; consumers on the server's event loop either `subscribe()` (an async
iterator with a bounded buffer) or `add_listener()` (a synchronous callback run on the loop).

Message kinds:
- engine event names ("execution_start", "executing", "progress", "executed", ...): JSON
  events for the websocket, `data` is the event's dict;
- "preview": a binary preview, `data` is a dict {"image_format": "JPEG"|"PNG",
  "image": bytes, "metadata": dict} (or raw bytes: an already encoded frame);
- "progress_text": `data` {"node_id", "text"};
- "queue_changed": published by JobService after every queue change; `data` may carry
  {"queue_remaining": N} for `workspace_id` (the websocket then needs no query);
- "interrupt": `data` {"prompt_id": id or None}; "free": `data` {"unload_models",
  "free_memory"}; both are control messages the worker listens for;
- "raw": `data` {"event": name, "data": ...}: a JSON message under any name (custom nodes'
  `PromptServer.send_sync`), delivered as-is;
- "binary": `data` {"event_type": int, "payload": bytes}: a binary frame, delivered as-is.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import AsyncIterator, Callable, Iterable

#: Kinds a consumer may drop first when it falls behind (they are superseded by later ones).
DROPPABLE_KINDS = frozenset({"progress", "progress_state", "preview", "progress_text"})

#: Control kinds the worker acts on.
CONTROL_KINDS = frozenset({"interrupt", "free"})

#: Kinds with a meaning on the bus; an engine or custom-node event of the same name travels
#: wrapped as "raw" instead.
RESERVED_KINDS = CONTROL_KINDS | {"queue_changed", "preview", "progress_text", "raw", "binary"}


@dataclass(frozen=True, slots=True)
class BusMessage:
    """One event on the bus.

    `client_id` routes it to one websocket client (None: every client of `workspace_id`);
    `prompt_id` names the job it belongs to, when it belongs to one.
    """

    kind: str
    data: dict | bytes
    client_id: str | None = None
    workspace_id: str = "local"
    prompt_id: str | None = None


class Subscription(abc.ABC):
    """A consumer's bounded buffer of messages, read on the server's event loop."""

    @abc.abstractmethod
    async def get(self) -> BusMessage:
        """Wait for the next message. Raises `asyncio.CancelledError` when the task is cancelled
        and `EOFError` once the subscription is closed and drained."""

    @abc.abstractmethod
    def get_nowait(self) -> BusMessage | None:
        """The next buffered message, or None when none is waiting."""

    @property
    @abc.abstractmethod
    def dropped(self) -> int:
        """How many messages were discarded because the buffer was full."""

    @abc.abstractmethod
    def close(self) -> None:
        """Stop receiving; a waiting `get()` raises EOFError once the buffer is empty."""

    def __aiter__(self) -> AsyncIterator[BusMessage]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[BusMessage]:
        while True:
            try:
                yield await self.get()
            except EOFError:
                return


class EventBus(abc.ABC):
    """Publish/subscribe between the parts of the server."""

    @abc.abstractmethod
    def publish(self, msg: BusMessage) -> None:
        """Hand `msg` to every matching consumer. Thread-safe and never blocks."""

    @abc.abstractmethod
    def subscribe(self, *, kinds: Iterable[str] | None = None, maxsize: int = 10_000) -> Subscription:
        """A new buffered subscription to `kinds` (None: every kind). Call on the event loop."""

    @abc.abstractmethod
    def add_listener(self, callback: Callable[[BusMessage], None], *,
                     kinds: Iterable[str] | None = None) -> Callable[[], None]:
        """Call `callback(msg)` on the event loop for each matching message; it must return
        quickly and never raise. Returns a function that removes the listener."""

    def close(self) -> None:
        """Close every subscription (optional for implementations)."""
        return None
