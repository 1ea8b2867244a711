"""Frontend-only routes under `/internal` (no `/api` alias, as ComfyUI): the log panel's
logs and live log stream, the configured folder paths, and file names of input/output/temp.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import shutil
from pathlib import Path

from aiohttp import web

from opencomfy.files.paths import FOLDER_TYPES
from opencomfy.http import packs
from opencomfy.http.errors import ApiError, read_json
from opencomfy.http.identity_files import roots_of
from opencomfy.http.routing import SERVICES
from opencomfy.logs import LogEntry, install_log_capture

log = logging.getLogger(__name__)
routes = web.RouteTableDef()

#: Client ids subscribed to the log stream; bounded so clients that never unsubscribe
#: (closed tabs) cannot grow it without limit: the oldest subscription goes first.
MAX_LOG_SUBSCRIBERS = 256


class LogSubscribers:
    """Websocket client ids that asked for `logs` messages. Thread-safe enough: a set of
    strings read from the logging thread, changed on the event loop."""

    def __init__(self, limit: int = MAX_LOG_SUBSCRIBERS) -> None:
        self._ids: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._limit = limit

    def set(self, client_id: str, enabled: bool) -> None:
        self._ids.pop(client_id, None)
        if enabled:
            self._ids[client_id] = None
            while len(self._ids) > self._limit:
                self._ids.popitem(last=False)

    def snapshot(self) -> list[str]:
        return list(self._ids)


LOG_SUBSCRIBERS = web.AppKey("log_subscribers", LogSubscribers)


def terminal_size() -> dict[str, int]:
    cols, rows = shutil.get_terminal_size(fallback=(120, 40))
    return {"cols": cols, "rows": rows}


@routes.get("/internal/logs")
async def get_logs(request: web.Request) -> web.Response:
    """The buffered log as text, one `<time> - <message>` per line."""
    return web.Response(text=install_log_capture().text())


@routes.get("/internal/logs/raw")
async def get_raw_logs(request: web.Request) -> web.Response:
    """The buffered log entries `{t, m}` and the terminal's size."""
    return web.json_response({"entries": install_log_capture().entries(),
                              "size": terminal_size()})


@routes.patch("/internal/logs/subscribe")
async def subscribe_logs(request: web.Request) -> web.Response:
    """Start or stop streaming `logs` messages to one websocket client."""
    body = await read_json(request)
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_request", "body must be an object")
    client_id, enabled = body.get("clientId"), body.get("enabled")
    if not isinstance(client_id, str) or not client_id or not isinstance(enabled, bool):
        raise ApiError(400, "invalid_request",
                       "clientId (a non-empty string) and enabled (a boolean) are required")
    request.app[LOG_SUBSCRIBERS].set(client_id, enabled)
    # Logged after subscribing, so a new subscriber's stream starts with this line.
    log.info("log streaming %s for client %s", "on" if enabled else "off", client_id)
    return web.Response(status=200)


@routes.get("/internal/folder_paths")
async def get_folder_paths(request: web.Request) -> web.Response:
    """`{folder: [[paths], [extensions]]}` of every model folder."""
    return web.json_response(packs.folder_paths_listing())


def _directory_of(request: web.Request, kind: str) -> Path | None:
    """The caller's folder of `kind` (its workspace's own with `--auth required`)."""
    if kind not in FOLDER_TYPES:
        return None
    return roots_of(request).root(kind)


def _visible_files_newest_first(directory: Path) -> list[str]:
    try:
        with os.scandir(directory) as it:
            files = [(e.stat().st_mtime, e.name) for e in it
                     if not e.name.startswith(".") and e.is_file()]
    except FileNotFoundError:
        return []
    files.sort(key=lambda item: -item[0])
    return [name for _, name in files]


@routes.get("/internal/files/{directory_type}")
async def get_files(request: web.Request) -> web.Response:
    """Names of the files directly in the caller's input, output or temp, newest first."""
    directory = _directory_of(request, request.match_info["directory_type"])
    if directory is None:
        return web.json_response({"error": "Invalid directory type"}, status=400)
    return web.json_response(await asyncio.to_thread(_visible_files_newest_first, directory))


def _stream_logs_to_subscribers(app: web.Application) -> None:
    """Publish each new log entry as a `logs` message to each subscribed client."""
    from opencomfy.events.base import BusMessage

    async def start(app: web.Application):
        services = app.get(SERVICES)
        if services is None:  # an app without services (unit tests of single routes)
            yield
            return
        subscribers, bus = app[LOG_SUBSCRIBERS], services.bus

        def on_entry(entry: LogEntry) -> None:
            client_ids = subscribers.snapshot()
            if not client_ids:
                return
            data = {"entries": [entry], "size": terminal_size()}
            for client_id in client_ids:
                bus.publish(BusMessage(kind="logs", data=data, client_id=client_id))

        remove = install_log_capture().add_listener(on_entry)
        try:
            yield
        finally:
            remove()

    app.cleanup_ctx.append(start)


def setup(app: web.Application) -> None:
    install_log_capture()
    app[LOG_SUBSCRIBERS] = LogSubscribers()
    app.router.add_routes(routes)
    _stream_logs_to_subscribers(app)
