"""The aiohttp application: middlewares, routes, and the services' lifetime."""

from __future__ import annotations

import importlib

from aiohttp import web

from opencomfy.config import Config
from opencomfy.http.auth import auth_middleware_for
from opencomfy.http.errors import error_middleware
from opencomfy.http.origin import origin_middlewares
from opencomfy.http.routing import SERVICES
from opencomfy.services import build_services

# Each module exposes `setup(app)`. The frontend's static routes go last: `/` catches the rest.
ROUTE_MODULES = (
    "opencomfy.http.prompt",     # /prompt /queue /interrupt /free /history* /jobs*
    "opencomfy.http.ws",         # /ws
    "opencomfy.http.files",      # /view /upload/* /embeddings /experiment/models /files/* /vhs/*
    "opencomfy.http.userdata",   # /users /settings /userdata /v2/userdata
    "opencomfy.http.system",     # /object_info /system_stats /features /extensions /i18n ... /health
    "opencomfy.http.internal",   # /internal/* (no /api alias)
    "opencomfy.http.assets",     # /assets* /tags (and the background asset routes)
    "opencomfy.http.tasks",      # /tasks*
    "opencomfy.http.identity",   # /user /auth/session /auth/token /.well-known/jwks.json
    "opencomfy.http.workspaces", # /workspaces* /workspace/* /invites/*/accept
    "opencomfy.http.secrets",    # /secrets*
    "opencomfy.http.feedback",   # /feedback
    "opencomfy.http.login",      # /login (the sign-in form)
    "opencomfy.http.frontend",   # / /templates /docs /extensions/<pack> user.css
)


def create_app(config: Config) -> web.Application:
    from opencomfy.nodes.setup import build_registry

    app = web.Application(
        client_max_size=config.max_upload_bytes,
        middlewares=[error_middleware, *origin_middlewares(config), auth_middleware_for(config)],
    )
    app["config"] = config
    # Nodes (core and custom) load before the router freezes: custom nodes add routes on import.
    registry = build_registry(config, app)
    app["registry"] = registry

    async def services_ctx(app: web.Application):
        async with build_services(config, registry) as services:
            app[SERVICES] = services
            yield

    app.cleanup_ctx.append(services_ctx)
    for name in ROUTE_MODULES:
        importlib.import_module(name).setup(app)

    async def host_hooks_ctx(app: web.Application):
        # After the services and the websocket hub (http/ws.py's context) have started.
        from opencomfy.compat.host import install_host_hooks
        from opencomfy.http.ws import WS_HUB

        install_host_hooks(app[SERVICES], sockets=app[WS_HUB].clients)
        yield

    app.cleanup_ctx.append(host_hooks_ctx)
    return app
