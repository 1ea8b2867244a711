"""Run the aiohttp application until interrupted."""

from __future__ import annotations

import logging

from aiohttp import web

from opencomfy.app import create_app
from opencomfy.config import Config

log = logging.getLogger(__name__)


def serve(config: Config) -> int:
    app = create_app(config)
    hosts = list(config.listen)
    log.info("opencomfy listening on %s port %d", ",".join(hosts), config.port)
    print(f"To see the GUI go to: http://{_display_host(hosts[0])}:{config.port}", flush=True)
    web.run_app(app, host=hosts, port=config.port, print=None, access_log=None,
                handle_signals=True, shutdown_timeout=5)
    return 0


def _display_host(host: str) -> str:
    if host in ("0.0.0.0", "::"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host
