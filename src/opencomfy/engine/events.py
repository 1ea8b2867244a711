"""How the engine reports what happens: the event sink protocol and the interrupt flag."""

from __future__ import annotations

import threading
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class EventSink(Protocol):
    """Receives the engine's events. Methods are synchronous and must never block."""

    def send(self, event: str, data: dict) -> None: ...

    def send_preview(self, image_format: str, image: bytes, metadata: dict) -> None: ...

    def send_progress_text(self, node_id: str, text: str) -> None: ...


class NullSink:
    """Drops every event (standalone runs, benchmarks)."""

    def send(self, event: str, data: dict) -> None:
        pass

    def send_preview(self, image_format: str, image: bytes, metadata: dict) -> None:
        pass

    def send_progress_text(self, node_id: str, text: str) -> None:
        pass


class RecordingSink:
    """Keeps every event in order; handy in tests and for standalone use."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []
        self.previews: list[tuple[str, bytes, dict]] = []
        self.texts: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def send(self, event: str, data: dict) -> None:
        with self._lock:
            self.events.append((event, data))

    def send_preview(self, image_format: str, image: bytes, metadata: dict) -> None:
        with self._lock:
            self.previews.append((image_format, image, metadata))

    def send_progress_text(self, node_id: str, text: str) -> None:
        with self._lock:
            self.texts.append((node_id, text))

    def of_type(self, event: str) -> list[dict]:
        """The payloads of every event named `event`, in order."""
        return [data for name, data in self.events if name == event]

    def executed_nodes(self) -> list[str]:
        """Ids of nodes that actually ran (had an `executing` event), in order."""
        return [data["node"] for name, data in self.events
                if name == "executing" and data.get("node") is not None]


class InterruptFlag:
    """A thread-safe flag that asks a running prompt to stop at the next check."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    def clear(self) -> None:
        self._event.clear()

    def is_set(self) -> bool:
        return self._event.is_set()
