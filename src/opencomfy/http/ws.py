"""`/ws` (and `/api/ws`): ComfyUI's websocket, fed by the event bus through `WebSocketHub`."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any, Callable

from aiohttp import WSMsgType, web

from opencomfy.events import frames
from opencomfy.events.base import BusMessage, EventBus
from opencomfy.events.fanout import WebSocketHub
from opencomfy.http.caller import workspace_of
from opencomfy.http.errors import ApiError, parse_json
from opencomfy.http.routing import SERVICES
from opencomfy.http.system import server_feature_flags

log = logging.getLogger(__name__)

WS_HUB = web.AppKey("ws_hub", WebSocketHub)

#: Longest client id we accept (ComfyUI accepts any; a bound keeps a hostile one small).
MAX_CLIENT_ID = 256


#: Above this many unsent bytes in the socket's buffer, the sender waits for the peer to read.
WRITE_BUFFER_LIMIT = 256 * 1024


class _AiohttpTransport:
    """Adapts aiohttp's WebSocketResponse to the hub's FrameTransport."""

    def __init__(self, ws: web.WebSocketResponse, request: web.Request) -> None:
        self._ws = ws
        self._transport = request.transport

    async def send_str(self, data: str) -> None:
        await self._ws.send_str(data)

    async def send_bytes(self, data: bytes) -> None:
        await self._ws.send_bytes(data)

    async def send_frames(self, messages: list) -> None:
        """Several messages in one socket write (aiohttp writes each frame on its own: one
        system call per event, the largest cost of a job on the server's loop)."""
        transport = self._transport
        if self._ws.compress or transport is None:  # never negotiated here; keep aiohttp's path
            for message in messages:
                await (self.send_str(message) if isinstance(message, str) else self.send_bytes(message))
            return
        if self._ws.closed or transport.is_closing():
            raise ConnectionResetError("websocket closed")
        transport.write(frames.websocket_frames(messages))
        # Flow control: a peer that does not read fills the socket buffer; wait, and let the
        # hub's bounded per-client queue absorb (and shed) what comes meanwhile.
        while transport.get_write_buffer_size() > WRITE_BUFFER_LIMIT:
            if transport.is_closing():
                raise ConnectionResetError("websocket closed")
            await asyncio.sleep(0.01)

    async def close(self) -> None:
        await self._ws.close()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()


async def websocket_handler(request: web.Request) -> web.StreamResponse:
    """One client: greet it, read its feature flags, keep it registered until it leaves."""
    hub = request.app[WS_HUB]
    sid = request.query.get("clientId") or uuid.uuid4().hex
    if len(sid) > MAX_CLIENT_ID:
        raise web.HTTPBadRequest(text="clientId too long")
    # No permessage-deflate: previews are already compressed and events are small, so it
    # would only cost the event loop CPU.
    ws = web.WebSocketResponse(max_msg_size=1024 * 1024, compress=False)
    await ws.prepare(request)
    conn = await hub.connect(sid=sid, workspace_id=workspace_of(request),
                             transport=_AiohttpTransport(ws, request))
    first_message = True
    try:
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                # Only the client's first message means anything: its feature flags.
                if first_message:
                    _read_feature_flags(hub, conn, msg.data)
                first_message = False
            elif msg.type == WSMsgType.ERROR:
                log.debug("websocket %s error: %s", sid, ws.exception())
    finally:
        hub.disconnect(conn)
    return ws


def _read_feature_flags(hub: WebSocketHub, conn, raw: str) -> None:
    try:
        message = parse_json(raw, what="websocket message")
    except ApiError:
        return
    if isinstance(message, dict) and message.get("type") == "feature_flags":
        hub.negotiate(conn, message.get("data"))


def prompt_server_senders(bus: EventBus) -> tuple[Callable[..., None], Callable[..., None]]:
    """`send` and `send_binary` for custom nodes' `PromptServer.instance` (installed by
    compat/host.py): what they send outside a run reaches the sockets through the bus
    (inside a run it goes to the run's sink)."""

    def send(event: str, data: Any, sid: str | None = None) -> None:
        bus.publish(BusMessage(kind="raw", data={"event": event, "data": data}, client_id=sid))

    def send_binary(event: int, data: Any, sid: str | None = None) -> None:
        if event == 3 and isinstance(data, (tuple, list)) and len(data) == 2:
            bus.publish(BusMessage(kind="progress_text", client_id=sid,
                                   data={"node_id": str(data[0]), "text": str(data[1])}))
        elif isinstance(data, (bytes, bytearray, memoryview)):
            bus.publish(BusMessage(kind="binary", client_id=sid,
                                   data={"event_type": int(event), "payload": bytes(data)}))

    return send, send_binary


async def _hub_ctx(app: web.Application):
    services = app[SERVICES]
    jobs = services.jobs

    async def queue_remaining(workspace_id: str) -> int:
        return await jobs.queue_remaining(workspace_id=workspace_id)

    hub = WebSocketHub(bus=services.bus, queue_remaining=queue_remaining,
                       server_flags=server_feature_flags(services.config))
    await hub.start()
    app[WS_HUB] = hub
    yield
    await hub.stop()


async def _close_sockets(app: web.Application) -> None:
    # Open websockets would hold graceful shutdown until its timeout: close them first.
    hub = app.get(WS_HUB)
    if hub is not None:
        await hub.close_clients()


def setup(app: web.Application) -> None:
    # Runs after the services' context (appended earlier in create_app), stops before it.
    app.cleanup_ctx.append(_hub_ctx)
    app.on_shutdown.append(_close_sockets)
    for path in ("/ws", "/api/ws"):
        app.router.add_get(path, websocket_handler)
