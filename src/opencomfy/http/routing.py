"""Route registration with ComfyUI's aliasing: every API route answers at `/x` and `/api/x`."""

from __future__ import annotations

from aiohttp import web

from opencomfy.services import Services

SERVICES = web.AppKey("services", Services)


def add_api_routes(app: web.Application, table: web.RouteTableDef) -> None:
    """Register each route of `table` at its bare path and under `/api`, as ComfyUI does."""
    for route in table:
        if not isinstance(route, web.RouteDef):
            continue
        path = route.path
        if path.startswith("/api/"):
            path = path[len("/api"):]
        for prefix in ("", "/api"):
            app.router.add_route(route.method, prefix + path, route.handler, **route.kwargs)


def add_cloud_routes(app: web.Application, table: web.RouteTableDef) -> None:
    """Register the cloud layer's routes (assets, tasks, identity, ...) under `/api` only.

    ComfyUI has no bare aliases for these, and a bare `/assets/...` would shadow the
    frontend's own `/assets/*.js` files."""
    for route in table:
        if not isinstance(route, web.RouteDef):
            continue
        path = route.path if route.path.startswith("/api/") else "/api" + route.path
        app.router.add_route(route.method, path, route.handler, **route.kwargs)


def services_of(request: web.Request) -> Services:
    return request.app[SERVICES]
