"""Progress, previews and interrupts for code running inside a node.

A context variable carries the running node's `NodeContext` (prompt id, node id, event sink,
interrupt flag, extra_data). Code on a foreign thread (a node's own worker thread) has no
context variable, so it falls back to the node most recently started by any run.
compat's `comfy.utils.ProgressBar`, `comfy.model_management` interrupt checks and
`PromptServer.instance.send_sync` are built on these functions.
"""

from __future__ import annotations

import contextvars
import io
import threading
import time
from typing import Any

__all__ = [
    "Interrupted", "NodeContext", "RunState", "current_context", "report_progress",
    "throw_if_interrupted", "send_progress_text", "send_event", "is_interrupted",
]


UNTHROTTLED_NODES = 64  # progress_state is sent on every change up to this many nodes


class Interrupted(Exception):
    """The prompt was interrupted (ComfyUI's InterruptProcessingException)."""

    node_id: str | None


class RunState:
    """Per-prompt state shared by every node of one run: sink, flag and progress registry."""

    def __init__(self, *, prompt_id: str, sink, interrupt, extra_data: dict, dynprompt=None,
                 progress_state_interval: float = 0.0):
        self.prompt_id = prompt_id
        self.sink = sink
        self.interrupt = interrupt
        self.extra_data = extra_data
        self.dynprompt = dynprompt
        self.active = True
        self.progress_state_interval = progress_state_interval
        self._nodes: dict[str, dict[str, Any]] = {}
        self._last_state_sent = 0.0
        self._state_dirty = False
        self._lock = threading.Lock()

    def node_ids(self, node_id: str) -> tuple[str, str | None, str]:
        """(display_node_id, parent_node_id, real_node_id) of a node of this run."""
        dynprompt = self.dynprompt
        if dynprompt is None:
            return node_id, None, node_id
        return (dynprompt.get_display_node_id(node_id), dynprompt.get_parent_node_id(node_id),
                dynprompt.get_real_node_id(node_id))

    # -- progress_state ------------------------------------------------------------------
    def _set_node_state(self, node_id: str, state: str, value: float, max_value: float) -> None:
        entry = self._nodes.get(node_id)
        if entry is None:
            display, parent, real = self.node_ids(node_id)
            entry = {"value": value, "max": max_value, "state": state, "node_id": node_id,
                     "prompt_id": self.prompt_id, "display_node_id": display,
                     "parent_node_id": parent, "real_node_id": real}
            self._nodes[node_id] = entry
        else:
            entry["value"] = value
            entry["max"] = max_value
            entry["state"] = state

    def start_node(self, node_id: str) -> None:
        with self._lock:
            self._set_node_state(node_id, "running", 0.0, 1.0)
        self.send_progress_state()

    def update_node(self, node_id: str, value: float, max_value: float) -> None:
        with self._lock:
            self._set_node_state(node_id, "running", value, max_value)
        self.send_progress_state()

    def finish_node(self, node_id: str) -> None:
        with self._lock:
            entry = self._nodes.get(node_id)
            max_value = entry["max"] if entry else 1.0
            self._set_node_state(node_id, "finished", max_value, max_value)
        self.send_progress_state()

    def error_node(self, node_id: str) -> None:
        with self._lock:
            entry = self._nodes.get(node_id)
            self._set_node_state(node_id, "error", entry["value"] if entry else 0.0,
                                 entry["max"] if entry else 1.0)
        self.send_progress_state(force=True)

    def send_progress_state(self, force: bool = False) -> None:
        """Send every non-pending node's state, as ComfyUI does on every change.

        The whole map on every change is quadratic on long graphs, so once a prompt has more
        than UNTHROTTLED_NODES nodes in it, sends are coalesced to one per interval (the
        last state is always flushed at the end).
        """
        now = time.monotonic()
        if not force and self.progress_state_interval > 0 and len(self._nodes) > UNTHROTTLED_NODES \
                and now - self._last_state_sent < self.progress_state_interval:
            self._state_dirty = True
            return
        with self._lock:
            nodes = {node_id: dict(entry) for node_id, entry in self._nodes.items()}
        self._last_state_sent = now
        self._state_dirty = False
        self.sink.send("progress_state", {"prompt_id": self.prompt_id, "nodes": nodes})

    def flush_progress_state(self) -> None:
        if self._state_dirty:
            self.send_progress_state(force=True)


class NodeContext:
    """The node being executed: what `current_context()` returns."""

    __slots__ = ("run", "node_id", "list_index")

    def __init__(self, run: RunState, node_id: str, list_index: int | None = None):
        self.run = run
        self.node_id = node_id
        self.list_index = list_index

    @property
    def prompt_id(self) -> str:
        return self.run.prompt_id

    @property
    def sink(self):
        return self.run.sink

    @property
    def interrupt(self):
        return self.run.interrupt

    @property
    def extra_data(self) -> dict:
        return self.run.extra_data

    @property
    def client_id(self) -> str | None:
        return self.run.extra_data.get("client_id")

    @property
    def display_node_id(self) -> str:
        return self.run.node_ids(self.node_id)[0]

    def __iter__(self):
        # Lets callers unpack it as the documented (prompt_id, node_id, sink, interrupt, extra_data).
        return iter((self.prompt_id, self.node_id, self.sink, self.interrupt, self.extra_data))


_current: contextvars.ContextVar[NodeContext | None] = contextvars.ContextVar(
    "opencomfy_node_context", default=None
)
_latest: NodeContext | None = None  # fallback for calls from threads the engine did not start


def enter_node(ctx: NodeContext) -> contextvars.Token:
    """Make `ctx` current (engine internal)."""
    global _latest
    _latest = ctx
    return _current.set(ctx)


def leave_node(token: contextvars.Token) -> None:
    _current.reset(token)


def end_run(run: RunState) -> None:
    """Forget `run` as the fallback context once it is over (engine internal)."""
    global _latest
    run.active = False
    if _latest is not None and _latest.run is run:
        _latest = None


def current_context() -> NodeContext | None:
    """The executing node's context, or the most recently started one from foreign threads."""
    ctx = _current.get()
    if ctx is not None:
        return ctx
    latest = _latest
    if latest is not None and latest.run.active:
        return latest
    return None


def is_interrupted() -> bool:
    ctx = current_context()
    return ctx is not None and ctx.run.interrupt is not None and ctx.run.interrupt.is_set()


def throw_if_interrupted() -> None:
    """Raise `Interrupted` when the running prompt was asked to stop."""
    if is_interrupted():
        raise Interrupted("Processing interrupted")


def send_event(event: str, data: dict) -> bool:
    """Send an arbitrary event through the running prompt's sink; False when none runs."""
    ctx = current_context()
    if ctx is None:
        return False
    ctx.run.sink.send(event, data)
    return True


def send_progress_text(text: str, node_id: str | None = None) -> None:
    ctx = current_context()
    if ctx is None:
        return
    ctx.run.sink.send_progress_text(node_id or ctx.node_id, text)


def report_progress(value: float, max: float, node_id: str | None = None,
                    preview: tuple | None = None) -> None:
    """Report progress of the running node (ComfyUI's ProgressBar hook).

    Sends `progress` and `progress_state`, and a preview image when `preview` is
    `("JPEG"|"PNG", PIL.Image | bytes, max_size)`. Raises `Interrupted` when the prompt
    was interrupted, as ComfyUI's hook does.
    """
    ctx = current_context()
    if ctx is None:
        return
    run = ctx.run
    if run.interrupt is not None and run.interrupt.is_set():
        raise Interrupted("Processing interrupted")
    node_id = str(node_id) if node_id is not None else ctx.node_id
    run.sink.send("progress", {"value": value, "max": max, "prompt_id": run.prompt_id,
                               "node": node_id})
    run.update_node(node_id, value, max)
    if preview is not None:
        _send_preview(run, node_id, preview)


def _send_preview(run: RunState, node_id: str, preview: tuple) -> None:
    image_format, image, max_size = (tuple(preview) + (None, None, None))[:3]
    image_format = (image_format or "JPEG").upper()
    if image_format not in ("JPEG", "PNG"):
        image_format = "JPEG"
    data = image if isinstance(image, (bytes, bytearray)) else _encode_preview(image, image_format, max_size)
    display, parent, real = run.node_ids(node_id)
    metadata = {"node_id": node_id, "prompt_id": run.prompt_id, "display_node_id": display,
                "parent_node_id": parent, "real_node_id": real,
                "image_type": "image/jpeg" if image_format == "JPEG" else "image/png"}
    run.sink.send_preview(image_format, bytes(data), metadata)


def _encode_preview(image, image_format: str, max_size: int | None) -> bytes:
    from PIL import Image

    if max_size and (image.width > max_size or image.height > max_size):
        scale = max_size / max(image.width, image.height)
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    if image_format == "JPEG":
        image.convert("RGB").save(buffer, format="JPEG", quality=95)
    else:
        image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()
