"""ComfyUI's ``server`` module: ``PromptServer.instance`` as custom nodes use it.

Packs add HTTP routes to ``PromptServer.instance.routes`` at import time and push events with
``send_sync``. Events sent while a prompt runs go to that run's EventSink (found through the
engine's context variable); events sent outside a run (from an HTTP handler, a thread) go to
the callback the host attached with :meth:`PromptServer.attach`.
"""

from __future__ import annotations

import asyncio
import io
import logging
from typing import Any, Callable

from aiohttp import web

log = logging.getLogger(__name__)


class BinaryEventTypes:
    """ComfyUI's binary websocket frame types (``protocol.py``)."""

    PREVIEW_IMAGE = 1
    UNENCODED_PREVIEW_IMAGE = 2
    TEXT = 3
    PREVIEW_IMAGE_WITH_METADATA = 4


def _current_context():
    from opencomfy.engine.progress import current_context

    return current_context()


class _QueueView:
    """The queue of a process that has none (a worker process, a registry built alone).

    Reads see an empty queue; changes raise, naming what is missing. The server replaces it
    with :class:`opencomfy.compat.prompt_queue.PromptQueueView` when its services start."""

    def get_current_queue(self):
        return [], []

    def get_current_queue_volatile(self):
        return [], []

    def get_tasks_remaining(self) -> int:
        return 0

    def get_history(self, *args, **kwargs) -> dict:
        return {}

    def _no_queue(self, *args, **kwargs):
        raise RuntimeError("PromptServer.instance.prompt_queue: this process has no job queue "
                           "(it is not the API server); the queue cannot be changed here")

    put = wipe_queue = delete_queue_item = wipe_history = delete_history_item = _no_queue
    set_flag = get = task_done = _no_queue


class PromptServer:
    """The object custom nodes reach as ``server.PromptServer.instance``."""

    instance: "PromptServer | None" = None

    def __init__(self, app: web.Application | None = None, loop: asyncio.AbstractEventLoop | None = None):
        PromptServer.instance = self
        self.app = app
        self.routes = web.RouteTableDef()
        self._loop = loop
        self.supports = ["custom_nodes_from_web"]
        self.sockets: dict[str, Any] = {}
        self.sockets_metadata: dict[str, Any] = {}
        self.on_prompt_handlers: list[Callable[[dict], dict]] = []
        self.prompt_queue: Any = _QueueView()
        self.number = 0
        self.web_root = None
        self.user_manager = None
        self.client_session = None
        self._client_id: str | None = None
        self._last_node_id: str | None = None
        self._last_prompt_id: str | None = None
        self._send: Callable[..., None] | None = None
        self._send_binary: Callable[..., None] | None = None

    # -- wiring by the host ------------------------------------------------------------------
    def attach(self, *, send: Callable[[str, Any, str | None], None] | None = None,
               send_binary: Callable[[int, Any, str | None], None] | None = None,
               prompt_queue: Any = None, loop: asyncio.AbstractEventLoop | None = None,
               sockets: dict | None = None) -> None:
        """Connect to the host server: where events outside a run go, the queue, the loop."""
        if send is not None:
            self._send = send
        if send_binary is not None:
            self._send_binary = send_binary
        if prompt_queue is not None:
            self.prompt_queue = prompt_queue
        if loop is not None:
            self._loop = loop
        if sockets is not None:
            self.sockets = sockets

    # -- state custom nodes read ------------------------------------------------------------
    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        if self._loop is not None:
            return self._loop
        try:
            return asyncio.get_running_loop()
        except RuntimeError:
            return None

    @loop.setter
    def loop(self, value) -> None:
        self._loop = value

    @property
    def client_id(self) -> str | None:
        """The client of the prompt that is running in this context, as in ComfyUI."""
        ctx = _current_context()
        if ctx is not None:
            return (ctx.extra_data or {}).get("client_id")
        return self._client_id

    @client_id.setter
    def client_id(self, value) -> None:
        self._client_id = value

    @property
    def last_node_id(self) -> str | None:
        ctx = _current_context()
        return ctx.node_id if ctx is not None else self._last_node_id

    @last_node_id.setter
    def last_node_id(self, value) -> None:
        self._last_node_id = value

    @property
    def last_prompt_id(self) -> str | None:
        ctx = _current_context()
        return ctx.prompt_id if ctx is not None else self._last_prompt_id

    @last_prompt_id.setter
    def last_prompt_id(self, value) -> None:
        self._last_prompt_id = value

    # -- sending -----------------------------------------------------------------------------
    def send_sync(self, event, data, sid: str | None = None) -> None:
        """Send an event: to the running prompt's sink, else to the host (sid None: everyone)."""
        if isinstance(event, int):
            self._send_binary_event(event, data, sid)
            return
        ctx = _current_context()
        addressed_elsewhere = sid is not None and ctx is not None and sid != ctx.client_id
        if ctx is not None and ctx.sink is not None and not addressed_elsewhere:
            ctx.sink.send(event, data)
            return
        if self._send is not None:
            self._send(event, data, sid)
        else:
            log.debug("custom-node event %r dropped: no client connection attached", event)

    async def send(self, event, data, sid: str | None = None) -> None:
        self.send_sync(event, data, sid)

    async def send_json(self, event, data, sid: str | None = None) -> None:
        self.send_sync(event, data, sid)

    def send_progress_text(self, text: str, node_id: str, sid: str | None = None) -> None:
        """Text shown under a node while it runs (binary frame type 3 in ComfyUI)."""
        ctx = _current_context()
        if ctx is not None and ctx.sink is not None:
            ctx.sink.send_progress_text(str(node_id), text)
        elif self._send_binary is not None:
            self._send_binary(BinaryEventTypes.TEXT, (str(node_id), text), sid)

    def _send_binary_event(self, event: int, data, sid: str | None) -> None:
        if event in (BinaryEventTypes.PREVIEW_IMAGE, BinaryEventTypes.UNENCODED_PREVIEW_IMAGE,
                     BinaryEventTypes.PREVIEW_IMAGE_WITH_METADATA):
            preview = _encode_preview(data)
            ctx = _current_context()
            if preview is not None and ctx is not None and ctx.sink is not None:
                image_format, image_bytes = preview
                display, parent, real = ctx.run.node_ids(ctx.node_id)
                ctx.sink.send_preview(image_format, image_bytes, {
                    "node_id": ctx.node_id, "prompt_id": ctx.prompt_id,
                    "display_node_id": display, "parent_node_id": parent, "real_node_id": real,
                    "image_type": "image/jpeg" if image_format == "JPEG" else "image/png"})
                return
        if event == BinaryEventTypes.TEXT and isinstance(data, (tuple, list)) and len(data) == 2:
            self.send_progress_text(data[1], data[0], sid)
            return
        if self._send_binary is not None:
            self._send_binary(event, data, sid)

    # -- prompt hooks ------------------------------------------------------------------------
    def add_on_prompt_handler(self, handler: Callable[[dict], dict]) -> None:
        """Register a function that may rewrite every POST /prompt body before it is queued."""
        self.on_prompt_handlers.append(handler)

    def trigger_on_prompt(self, json_data: dict) -> dict:
        """Run the registered on-prompt handlers; one that fails is logged and skipped."""
        for handler in self.on_prompt_handlers:
            try:
                json_data = handler(json_data)
            except Exception:
                log.exception("on_prompt handler %r failed", handler)
        return json_data

    def add_routes(self) -> None:
        """ComfyUI calls this itself; routes are added by opencomfy's ``build_registry``."""


def _encode_preview(data) -> tuple[str, bytes] | None:
    """ComfyUI's preview tuple ``(format, PIL image | bytes, max_size)`` -> (format, bytes)."""
    if isinstance(data, dict) and "image" in data:
        data = data["image"]
    if not isinstance(data, (tuple, list)) or len(data) < 2:
        return None
    image_format, image = str(data[0]).upper(), data[1]
    if image_format not in ("JPEG", "PNG"):
        image_format = "JPEG"
    if isinstance(image, (bytes, bytearray)):
        return image_format, bytes(image)
    max_size = data[2] if len(data) > 2 else None
    try:
        if max_size:
            image = image.copy()
            image.thumbnail((max_size, max_size))
        buf = io.BytesIO()
        if image_format == "JPEG":
            image.convert("RGB").save(buf, format="JPEG", quality=95)
        else:
            image.save(buf, format="PNG", compress_level=1)
    except Exception:
        log.exception("could not encode a custom node's preview image")
        return None
    return image_format, buf.getvalue()


def ensure_instance() -> PromptServer:
    """The process's PromptServer, created on first use."""
    return PromptServer.instance or PromptServer()
