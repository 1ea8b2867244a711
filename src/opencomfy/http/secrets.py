"""`/api/secrets`: a workspace's secrets. Values go in, never come out (metadata only)."""

from __future__ import annotations

import uuid

from aiohttp import web

from opencomfy.http.caller import caller_of
from opencomfy.http.errors import ApiError, read_json
from opencomfy.http.routing import add_cloud_routes, services_of
from opencomfy.identity.errors import NotFound

routes = web.RouteTableDef()


def _secret_id(request: web.Request) -> str:
    raw = request.match_info["id"]
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        raise NotFound("secret not found") from None


async def _object(request: web.Request) -> dict:
    body = await read_json(request, max_bytes=1024 * 1024)
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_request", "request body must be a JSON object")
    return body


@routes.get("/api/secrets")
async def list_secrets(request: web.Request) -> web.Response:
    found = await services_of(request).secrets.list(workspace_id=caller_of(request).workspace_id)
    return web.json_response({"data": found})


@routes.post("/api/secrets")
async def create_secret(request: web.Request) -> web.Response:
    body = await _object(request)
    caller = caller_of(request)
    created = await services_of(request).secrets.create(
        workspace_id=caller.workspace_id, user_id=caller.user_id, name=body.get("name"),
        value=body.get("secret_value"), provider=body.get("provider"))
    return web.json_response(created, status=201)


@routes.get("/api/secrets/{id}")
async def get_secret(request: web.Request) -> web.Response:
    return web.json_response(await services_of(request).secrets.get(
        workspace_id=caller_of(request).workspace_id, secret_id=_secret_id(request)))


@routes.patch("/api/secrets/{id}")
async def update_secret(request: web.Request) -> web.Response:
    body = await _object(request)
    return web.json_response(await services_of(request).secrets.update(
        workspace_id=caller_of(request).workspace_id, secret_id=_secret_id(request),
        name=body.get("name"), value=body.get("secret_value")))


@routes.delete("/api/secrets/{id}")
async def delete_secret(request: web.Request) -> web.Response:
    await services_of(request).secrets.delete(workspace_id=caller_of(request).workspace_id,
                                              secret_id=_secret_id(request))
    return web.Response(status=204)


def setup(app: web.Application) -> None:
    add_cloud_routes(app, routes)
