"""Fan-out of bus messages to websocket clients, in ComfyUI's wire format.

One consumer task reads the bus in order and routes each message; every client has a bounded
queue of frames and its own sender task, so a slow or dead socket only ever delays itself.
When a client's queue is full, its oldest progress and preview frames are dropped first; a
client that is behind even on the messages that matter is disconnected.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
from typing import Any, Awaitable, Callable, Protocol

from opencomfy.events import frames
from opencomfy.events.base import CONTROL_KINDS, DROPPABLE_KINDS, BusMessage, EventBus

log = logging.getLogger(__name__)

#: Events that only the prompt's own client receives (nobody, when the prompt has none).
#: Every other prompt event is broadcast when the prompt has no client (ComfyUI's routing).
CLIENT_ONLY_KINDS = frozenset({"execution_start", "execution_cached", "executing", "executed",
                               "execution_error", "execution_success"})
#: Events after which a client no longer owns a running prompt.
_END_KINDS = frozenset({"execution_success", "execution_error", "execution_interrupted"})

MAX_QUEUED_FRAMES = 2000
MAX_QUEUED_BYTES = 8 * 1024 * 1024
#: A transport that can write several frames at once (`send_frames`) gets up to this many
#: bytes of queued frames per write.
SEND_BATCH_BYTES = 256 * 1024
#: How long such a transport's frames wait for company before they are written, unless one
#: of them must go at once (the end of a prompt, replies to the client). A job's ~10 events
#: then leave in one or two writes, not one each: every write to a local socket also wakes
#: the reader, which under load cost more than everything else the server does per job.
CORK_SECONDS = 0.002


class FrameTransport(Protocol):
    """The socket under a client: aiohttp's WebSocketResponse, adapted."""

    async def send_str(self, data: str) -> None: ...

    async def send_bytes(self, data: bytes) -> None: ...

    async def close(self) -> None: ...

    def abort(self) -> None: ...

    # Optional: `async def send_frames(self, frames: list[str | bytes]) -> None`, several
    # frames in one write; the sender uses it when the transport has it.


class ClientConnection:
    """One websocket client: its negotiated features, a bounded frame queue, one sender."""

    def __init__(self, *, sid: str, workspace_id: str, transport: FrameTransport,
                 max_frames: int = MAX_QUEUED_FRAMES, max_bytes: int = MAX_QUEUED_BYTES,
                 start_sending: bool = True) -> None:
        self.sid = sid
        self.workspace_id = workspace_id
        self.transport = transport
        self.feature_flags: dict = {}
        self.max_frames = max_frames
        self.max_bytes = max_bytes
        self.dropped = 0
        self.closed = False
        self._frames: collections.deque[tuple[str | bytes, bool]] = collections.deque()
        self._bytes = 0
        self._droppable = 0
        self._ready = asyncio.Event()
        self._flush_waiter: asyncio.Future | None = None  # set while frames are corked
        self._flush_requested = False  # a queued frame must not wait for company
        self._sender: asyncio.Future | None = None
        if start_sending:
            self.start_sending()

    def start_sending(self, greeting: tuple[str | bytes, ...] = ()) -> None:
        """Put `greeting` ahead of every frame queued so far, then start the sender."""
        for frame in reversed(greeting):
            self._frames.appendleft((frame, False))
            self._bytes += len(frame)
        if greeting:
            self._ready.set()
            self._flush_soon()
        if self._sender is None and not self.closed:
            self._sender = asyncio.ensure_future(self._send_forever())

    def _flush_soon(self) -> None:
        self._flush_requested = True
        waiter = self._flush_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def supports(self, flag: str) -> bool:
        return bool(self.feature_flags.get(flag))

    def enqueue(self, frame: str | bytes, *, droppable: bool = False, flush: bool = False) -> None:
        """Queue a frame without waiting; drop or disconnect when the client is too far behind.
        `flush`: write it (and everything before it) now rather than after a short wait."""
        if self.closed:
            return
        size = len(frame)
        while self._frames and (len(self._frames) >= self.max_frames
                                or self._bytes + size > self.max_bytes):
            if self._droppable:
                self._drop_oldest_droppable()
            elif droppable:
                self._count_drop()
                return
            else:
                log.warning("websocket client %s is too far behind; disconnecting", self.sid)
                self.abort()
                return
        self._frames.append((frame, droppable))
        self._bytes += size
        self._droppable += droppable
        self._ready.set()
        if flush or self._bytes >= SEND_BATCH_BYTES:
            self._flush_soon()

    def _count_drop(self) -> None:
        if not self.dropped:
            log.info("websocket client %s is falling behind; dropping its progress and "
                     "preview frames", self.sid)
        self.dropped += 1

    def _drop_oldest_droppable(self) -> None:
        for i, (frame, droppable) in enumerate(self._frames):
            if droppable:
                del self._frames[i]
                self._bytes -= len(frame)
                self._droppable -= 1
                self._count_drop()
                return

    @property
    def queued(self) -> int:
        return len(self._frames)

    # ComfyUI's PromptServer.sockets maps ids to aiohttp websockets, and a few packs write to
    # them directly; these keep such writes working, through the same bounded queue.
    async def send_str(self, data: str) -> None:
        self.enqueue(data, flush=True)

    async def send_bytes(self, data: bytes) -> None:
        self.enqueue(bytes(data), flush=True)

    async def send_json(self, data: Any) -> None:
        self.enqueue(json.dumps(data), flush=True)

    async def _send_forever(self) -> None:
        send_frames = getattr(self.transport, "send_frames", None)
        try:
            while True:
                while not self._frames:
                    self._ready.clear()
                    await self._ready.wait()
                if send_frames is not None:
                    # Everything queued meanwhile (up to a bound) in one write.
                    await self._cork()
                    if self._frames:
                        await send_frames(self._take_batch())
                    continue
                frame, droppable = self._frames.popleft()
                self._bytes -= len(frame)
                self._droppable -= droppable
                if isinstance(frame, str):
                    await self.transport.send_str(frame)
                else:
                    await self.transport.send_bytes(frame)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the peer went away: stop sending, the reader cleans up
            log.debug("websocket %s send failed: %s", self.sid, exc)
            self.closed = True

    async def _cork(self) -> None:
        """Wait CORK_SECONDS for more frames, or less when a frame asks to be flushed."""
        if self._flush_requested:
            return
        loop = asyncio.get_running_loop()
        waiter = self._flush_waiter = loop.create_future()
        timer = loop.call_later(CORK_SECONDS, _resolve, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._flush_waiter = None

    def _take_batch(self) -> list[str | bytes]:
        batch: list[str | bytes] = []
        size = 0
        while self._frames and (not batch or size < SEND_BATCH_BYTES):
            frame, droppable = self._frames.popleft()
            self._bytes -= len(frame)
            self._droppable -= droppable
            size += len(frame)
            batch.append(frame)
        if not self._frames:
            self._flush_requested = False
        return batch

    def abort(self) -> None:
        """Drop the connection now, without a closing handshake (the peer is not reading)."""
        self.closed = True
        self._frames.clear()
        if self._sender is not None:
            self._sender.cancel()
        try:
            self.transport.abort()
        except Exception:
            pass

    async def close(self) -> None:
        """Stop sending and close the socket politely (aborting if that stalls)."""
        self.closed = True
        if self._sender is not None:
            self._sender.cancel()
        try:
            await asyncio.wait_for(self.transport.close(), 2.0)
        except Exception:
            self.abort()


def _resolve(waiter: asyncio.Future) -> None:
    if not waiter.done():
        waiter.set_result(None)


class WebSocketHub:
    """Every connected client, and the task that routes bus messages to them."""

    def __init__(self, *, bus: EventBus, queue_remaining: Callable[[str], Awaitable[int]],
                 server_flags: dict) -> None:
        self.bus = bus
        self.queue_remaining = queue_remaining
        self.server_flags = dict(server_flags)
        # Clients by workspace, then client id: ids are only unique within a workspace, and a
        # message never crosses workspaces. `clients` is the local workspace's (the one
        # ComfyUI's custom nodes see as PromptServer.instance.sockets).
        self.clients: dict[str, ClientConnection] = {}
        self._workspaces: dict[str, dict[str, ClientConnection]] = {"local": self.clients}
        # (workspace, client id) -> the `executing` data of its running prompt.
        self._running: dict[tuple[str, str], dict] = {}
        self._consumer: asyncio.Task | None = None
        self._subscription = None

    async def start(self) -> None:
        self._subscription = self.bus.subscribe(maxsize=100_000)
        self._consumer = asyncio.ensure_future(self._consume())

    async def stop(self) -> None:
        if self._consumer is not None:
            self._consumer.cancel()
            try:
                await self._consumer
            except (asyncio.CancelledError, Exception):
                pass
        if self._subscription is not None:
            self._subscription.close()
        await self.close_clients()

    async def close_clients(self) -> None:
        """Close every client's socket (at shutdown: their handlers then return)."""
        everyone = [c for clients in self._workspaces.values() for c in clients.values()]
        for clients in self._workspaces.values():
            clients.clear()
        await asyncio.gather(*(c.close() for c in everyone), return_exceptions=True)

    # -- clients ----------------------------------------------------------------------------

    async def connect(self, *, sid: str, workspace_id: str,
                      transport: FrameTransport) -> ClientConnection:
        """Register a client (replacing an older socket with the same id) and greet it with
        `status` and, if it owns the running prompt, the node that runs now."""
        clients = self._workspaces.setdefault(workspace_id, {})
        old = clients.get(sid)
        if old is not None:
            asyncio.ensure_future(old.close())
        # Registered before the first await: a prompt queued the moment the handshake is done
        # (and finished while we read the queue count) must find its client, or its events
        # would go nowhere. Its frames wait behind the greeting, which is sent first.
        conn = ClientConnection(sid=sid, workspace_id=workspace_id, transport=transport,
                                start_sending=False)
        clients[sid] = conn
        running = self._running.get((workspace_id, sid))
        try:
            remaining = await self._queue_remaining(workspace_id)
        except BaseException:  # cancelled (shutdown): leave nothing registered behind
            self.disconnect(conn)
            raise
        greeting = [frames.json_frame("status", frames.status_data(remaining, sid))]
        if running is not None:
            greeting.append(frames.json_frame("executing", running))
        conn.start_sending(tuple(greeting))
        return conn

    def disconnect(self, conn: ClientConnection) -> None:
        clients = self._workspaces.get(conn.workspace_id, {})
        if clients.get(conn.sid) is conn:
            del clients[conn.sid]
            if not clients and conn.workspace_id != "local":
                del self._workspaces[conn.workspace_id]
        if not conn.closed:
            conn.abort()

    def negotiate(self, conn: ClientConnection, client_flags: Any) -> None:
        """The client's `feature_flags` message: remember its flags, answer with ours."""
        conn.feature_flags = dict(client_flags) if isinstance(client_flags, dict) else {}
        conn.enqueue(frames.json_frame("feature_flags", self.server_flags), flush=True)

    async def _queue_remaining(self, workspace_id: str) -> int:
        try:
            return int(await self.queue_remaining(workspace_id))
        except Exception:
            log.exception("queue_remaining failed")
            return 0

    # -- routing ----------------------------------------------------------------------------

    async def _consume(self) -> None:
        assert self._subscription is not None
        sub = self._subscription
        held: BusMessage | None = None
        while True:
            msg = held if held is not None else await sub.get()
            held = None
            if msg.kind == "queue_changed":
                # A burst of queue changes becomes one `status` (the latest count wins).
                while (nxt := sub.get_nowait()) is not None:
                    if nxt.kind == "queue_changed" and nxt.workspace_id == msg.workspace_id:
                        msg = nxt
                    else:
                        held = nxt
                        break
            try:
                await self.route(msg)
            except Exception:
                log.exception("could not deliver a %s event", msg.kind)

    def _targets(self, msg: BusMessage) -> list[ClientConnection]:
        clients = self._workspaces.get(msg.workspace_id)
        if not clients:
            return []
        if msg.client_id is not None:
            conn = clients.get(msg.client_id)
            return [conn] if conn is not None else []
        if msg.kind in CLIENT_ONLY_KINDS:
            return []
        return list(clients.values())

    async def route(self, msg: BusMessage) -> None:
        kind = msg.kind
        if kind in CONTROL_KINDS:
            return
        if kind == "queue_changed":
            data = msg.data if isinstance(msg.data, dict) else {}
            remaining = data.get("queue_remaining")
            if remaining is None:
                remaining = await self._queue_remaining(msg.workspace_id)
            frame = frames.json_frame("status", frames.status_data(remaining))
            for conn in list(self._workspaces.get(msg.workspace_id, {}).values()):
                conn.enqueue(frame)
            return
        self._track_running(msg)
        targets = self._targets(msg)
        if not targets:
            return
        droppable = kind in DROPPABLE_KINDS
        if kind == "preview":
            self._send_preview(msg, targets)
        elif kind == "progress_text":
            self._send_progress_text(msg, targets)
        elif kind == "binary":
            data = msg.data if isinstance(msg.data, dict) else {}
            frame = frames.binary_frame(data.get("event_type", 0), data.get("payload", b""))
            for conn in targets:
                conn.enqueue(frame, droppable=True)
        else:
            if kind == "raw" and isinstance(msg.data, dict):
                frame = frames.json_frame(str(msg.data.get("event")), msg.data.get("data"))
            else:
                frame = frames.json_frame(kind, msg.data)
            # The end of a prompt goes out at once (with what is corked before it).
            flush = kind == "executing" and isinstance(msg.data, dict) and msg.data.get("node") is None
            for conn in targets:
                conn.enqueue(frame, droppable=droppable, flush=flush)

    def _track_running(self, msg: BusMessage) -> None:
        if msg.client_id is None or not isinstance(msg.data, dict):
            return
        key = (msg.workspace_id, msg.client_id)
        if msg.kind == "executing":
            node = msg.data.get("node")
            if node is None:
                self._running.pop(key, None)
            else:
                self._running[key] = {"node": node,
                                      "display_node": msg.data.get("display_node", node),
                                      "prompt_id": msg.data.get("prompt_id", msg.prompt_id)}
        elif msg.kind in _END_KINDS:
            self._running.pop(key, None)

    def _send_preview(self, msg: BusMessage, targets: list[ClientConnection]) -> None:
        if isinstance(msg.data, (bytes, bytearray)):
            for conn in targets:
                conn.enqueue(bytes(msg.data), droppable=True)
            return
        data = msg.data
        image_format = str(data.get("image_format", "JPEG"))
        image = data.get("image", b"")
        legacy: bytes | None = None
        with_meta: bytes | None = None
        for conn in targets:
            if conn.supports("supports_preview_metadata"):
                if with_meta is None:
                    with_meta = frames.preview_with_metadata_frame(
                        image_format, image, data.get("metadata") or {}, msg.prompt_id)
                conn.enqueue(with_meta, droppable=True)
            else:
                if legacy is None:
                    legacy = frames.preview_frame(image_format, image)
                conn.enqueue(legacy, droppable=True)

    def _send_progress_text(self, msg: BusMessage, targets: list[ClientConnection]) -> None:
        data = msg.data if isinstance(msg.data, dict) else {}
        node_id, text = data.get("node_id", ""), data.get("text", "")
        # The frontend reads the prompt id prefix when the *server* announces the flag; send it
        # only when both sides agree on it.
        server_side = bool(self.server_flags.get("supports_progress_text_metadata"))
        for conn in targets:
            frame = frames.progress_text_frame(
                node_id, text, msg.prompt_id,
                with_prompt_id=server_side and conn.supports("supports_progress_text_metadata"))
            conn.enqueue(frame, droppable=True)
