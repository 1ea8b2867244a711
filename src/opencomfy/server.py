"""Run the aiohttp application until interrupted."""

from __future__ import annotations

import asyncio
import logging
import sys

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from opencomfy.app import create_app
from opencomfy.config import Config
from opencomfy.http.errors import error_response
from opencomfy.secrets.crypto import KeyringError

log = logging.getLogger(__name__)

#: Slower than this on average, a request body is a trickle: each byte buys this much time
#: beyond the deadline, so big uploads on slow links still finish.
MIN_BODY_RATE = 4096  # bytes per second


def body_deadline_middleware(timeout: float):
    """Drop a client whose request body stalls: nothing for `timeout` seconds, or less than
    MIN_BODY_RATE on average past the first `timeout` seconds. aiohttp has no read timeout of
    its own, and a handler awaiting the body would otherwise hold the connection forever."""
    interval = min(timeout / 4, 1.0)

    async def watch(request: web.Request, fired: list[bool]) -> None:
        loop = asyncio.get_running_loop()
        content = request.content
        started = last_progress = loop.time()
        seen = content.total_bytes
        while not content.is_eof():
            await asyncio.sleep(interval)
            now = loop.time()
            if content.total_bytes != seen:
                seen, last_progress = content.total_bytes, now
            if now - last_progress > timeout or now - started > timeout + seen / MIN_BODY_RATE:
                fired.append(True)
                # A TimeoutError wakes the reader; aiohttp's own draining ignores it quietly.
                content.set_exception(asyncio.TimeoutError("request body read timed out"))
                return

    @web.middleware
    async def body_deadline(request: web.Request, handler):
        if not request.body_exists or request.content.is_eof():
            return await handler(request)
        fired: list[bool] = []
        watchdog = asyncio.create_task(watch(request, fired))
        try:
            response = await handler(request)
        except Exception:
            if not fired:
                raise
        finally:
            watchdog.cancel()
        if not fired:
            return response
        # Whatever the handler made of a body cut short, the client gets 408 and is dropped.
        log.info("dropped %s %s: the request body stalled", request.method, request.path)
        timed_out = error_response(408, "request_timeout", "request body read timed out")
        timed_out.force_close()
        return timed_out

    return body_deadline


class BadRequestLogFilter(logging.Filter):
    """Shortens aiohttp's log of a request it could not parse (a NUL byte in a header, a bad
    request line: HttpProcessingError) to one INFO line. aiohttp answers those 400 itself but
    logs each with a full traceback at ERROR, which any client could use to flood the log.
    Every other record, a handler's real failure included, passes unchanged."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            remote = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
            # The reason quotes the client's raw bytes over several lines (with a caret under
            # the bad byte): one printable, short line of it.
            parts = [line.strip() for line in str(exc.message).splitlines()]
            reason = " ".join(p for p in parts if p and p != "^")
            reason = "".join(ch if ch.isprintable() else "?" for ch in reason)
            record.msg, record.args = "bad HTTP request from %s: %s", (remote, reason[:200])
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.INFO, logging.getLevelName(logging.INFO)
        return True


def _quiet_bad_requests() -> None:
    server_log = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, BadRequestLogFilter) for f in server_log.filters):
        server_log.addFilter(BadRequestLogFilter())


def serve(config: Config) -> int:
    app = create_app(config)
    _quiet_bad_requests()
    # Innermost, so the handler's reads are what it guards (the router is not frozen yet).
    app.middlewares.append(body_deadline_middleware(config.body_read_timeout))
    hosts = list(config.listen)
    log.info("opencomfy listening on %s port %d", ",".join(hosts), config.port)
    print(f"To see the GUI go to: http://{_display_host(hosts[0])}:{config.port}", flush=True)
    try:
        web.run_app(app, host=hosts, port=config.port, print=None, access_log=None,
                    handle_signals=True, shutdown_timeout=5)
    except KeyringError as exc:  # an unusable keyring file or variable: the operator's to fix
        print(f"opencomfy: secrets keyring: {exc}", file=sys.stderr, flush=True)
        return 2
    return 0


def _display_host(host: str) -> str:
    if host in ("0.0.0.0", "::"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host
