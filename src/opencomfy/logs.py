"""Log capture for the frontend's log panel: a bounded ring of recent log lines.

A logging handler on the root logger records each line as `{"t": epoch seconds, "m": text}`
(ComfyUI's entry shape; `m` ends with a newline, ready for a terminal). Listeners (the
`/internal/logs/subscribe` streamer) are told of each new entry. Optionally, writes to
stdout/stderr (custom nodes `print`) are recorded too, as ComfyUI does.

The capture is process-wide, as logging is; install it once and early so that start-up
lines (custom node imports) are kept: `install_log_capture()` is idempotent.
"""

from __future__ import annotations

import collections
import datetime
import io
import logging
import sys
import threading
import time
from typing import Callable

LogEntry = dict  # {"t": float, "m": str}
Listener = Callable[[LogEntry], None]

DEFAULT_CAPACITY = 1_000
_FORMAT = "%(message)s"


class LogCapture:
    """The ring buffer of recent entries and the listeners told of new ones. Thread-safe."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self._entries: collections.deque[LogEntry] = collections.deque(maxlen=capacity)
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()
        # Set while listeners run, so a listener that logs cannot recurse into itself.
        self._delivering = threading.local()

    @property
    def capacity(self) -> int:
        return self._entries.maxlen or 0

    def record(self, message: str, *, timestamp: float | None = None) -> None:
        """Keep one entry and tell the listeners."""
        if not message:
            return
        entry = {"t": time.time() if timestamp is None else timestamp, "m": message}
        with self._lock:
            self._entries.append(entry)
            listeners = list(self._listeners)
        if getattr(self._delivering, "active", False):
            return
        self._delivering.active = True
        try:
            for listener in listeners:
                try:
                    listener(entry)
                except Exception:  # a failing listener must never break logging
                    pass
        finally:
            self._delivering.active = False

    def entries(self) -> list[LogEntry]:
        """A copy of the buffered entries, oldest first."""
        with self._lock:
            return list(self._entries)

    def text(self) -> str:
        """The buffer as ComfyUI's `/internal/logs` text: `<ISO time> - <message>` lines."""
        return "".join(f"{_iso(e['t'])} - {e['m']}" for e in self.entries())

    def add_listener(self, listener: Listener) -> Callable[[], None]:
        """Call `listener(entry)` for each new entry (from the logging thread; it must be
        quick and thread-safe). Returns a function that removes it."""
        with self._lock:
            self._listeners.append(listener)

        def remove() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return remove


def _iso(timestamp: float) -> str:
    return datetime.datetime.fromtimestamp(timestamp).isoformat()


class CaptureHandler(logging.Handler):
    """A logging handler that feeds a LogCapture."""

    def __init__(self, capture: LogCapture) -> None:
        super().__init__(level=logging.NOTSET)
        self.capture = capture
        self.setFormatter(logging.Formatter(_FORMAT))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.capture.record(self.format(record) + "\n", timestamp=record.created)
        except Exception:
            self.handleError(record)


class _StreamTee(io.TextIOBase):
    """Passes writes through to the real stream and records them (prints of custom nodes)."""

    def __init__(self, stream, capture: LogCapture) -> None:
        self._stream = stream
        self._capture = capture
        self._partial = ""  # print() writes the text and its newline separately
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        written = self._stream.write(text)
        with self._lock:
            pending = self._partial + text
            complete, newline, self._partial = pending.rpartition("\n")
            if newline:
                self._capture.record(complete + newline)
        return written

    def flush(self) -> None:
        self._stream.flush()

    # io.TextIOBase answers these itself (None), so __getattr__ would never see them; packs
    # (e.g. ComfyUI-Manager's logger) read sys.stdout.encoding.
    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._stream, "encoding", None) or "utf-8"

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        return getattr(self._stream, "errors", None)

    def __getattr__(self, name):  # fileno, isatty, buffer...
        return getattr(self._stream, name)


_installed: LogCapture | None = None
_install_lock = threading.Lock()


def install_log_capture(*, capacity: int = DEFAULT_CAPACITY,
                        capture_streams: bool = False) -> LogCapture:
    """Attach the capture to the root logger (once) and return it.

    With `capture_streams`, stdout and stderr writes are recorded too; call it after logging
    is configured, so that log lines written by a stream handler are not recorded twice.
    """
    global _installed
    with _install_lock:
        if _installed is None:
            _installed = LogCapture(capacity)
            logging.getLogger().addHandler(CaptureHandler(_installed))
        if capture_streams:
            if not isinstance(sys.stdout, _StreamTee):
                sys.stdout = _StreamTee(sys.stdout, _installed)
            if not isinstance(sys.stderr, _StreamTee):
                sys.stderr = _StreamTee(sys.stderr, _installed)
        return _installed


def log_capture() -> LogCapture | None:
    """The installed capture, if any."""
    return _installed
