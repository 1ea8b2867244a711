"""Workspaces, members, invites and workspace API keys (the spec's `workspaces` tag).

The current workspace (`/api/workspace/...`) is the caller's: the credential's, or the one
named by `X-Comfy-Workspace-ID`. Owners manage members, invites and everyone's keys;
members use the workspace and manage their own keys."""

from __future__ import annotations

from aiohttp import web

from opencomfy.http.caller import caller_of
from opencomfy.http.errors import ApiError, read_json
from opencomfy.http.identity_common import owner_of
from opencomfy.http.routing import add_cloud_routes, services_of
from opencomfy.identity import api_keys, invites, workspaces
from opencomfy.identity.common import OWNER, iso
from opencomfy.identity.errors import Invalid, NotFound

routes = web.RouteTableDef()


def _db(request: web.Request):
    services = services_of(request)
    if services.config.auth != "required":
        raise NotFound("workspaces need --auth required")
    return services.identity.db


async def _object(request: web.Request) -> dict:
    body = await read_json(request, default={})
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_request", "request body must be a JSON object")
    return body


def _local_workspace() -> dict:
    return {"id": "local", "name": "Local", "type": "personal", "created_at": iso(0)}


# ------------------------------------------------------------------------------ workspaces

@routes.get("/api/workspaces")
async def list_workspaces(request: web.Request) -> web.Response:
    caller = caller_of(request)
    if caller.credential == "local":
        return web.json_response({"workspaces": [
            {**_local_workspace(), "role": OWNER, "joined_at": iso(0)}]})
    found = await workspaces.list_for_user(db=_db(request), user_id=caller.user_id)
    return web.json_response({"workspaces": found})


@routes.post("/api/workspaces")
async def create_workspace(request: web.Request) -> web.Response:
    body = await _object(request)
    created = await workspaces.create_team(db=_db(request), user_id=caller_of(request).user_id,
                                           name=body.get("name"))
    return web.json_response(created, status=201)


@routes.get("/api/workspaces/{id}")
async def get_workspace(request: web.Request) -> web.Response:
    caller = caller_of(request)
    if caller.credential == "local" and request.match_info["id"] == "local":
        return web.json_response(_local_workspace())
    return web.json_response(await workspaces.get(
        db=_db(request), user_id=caller.user_id, workspace_id=request.match_info["id"]))


@routes.patch("/api/workspaces/{id}")
async def update_workspace(request: web.Request) -> web.Response:
    body = await _object(request)
    return web.json_response(await workspaces.rename(
        db=_db(request), user_id=caller_of(request).user_id,
        workspace_id=request.match_info["id"], name=body.get("name")))


@routes.delete("/api/workspaces/{id}")
async def delete_workspace(request: web.Request) -> web.Response:
    await workspaces.soft_delete(db=_db(request), user_id=caller_of(request).user_id,
                                 workspace_id=request.match_info["id"])
    return web.Response(status=204)


# ------------------------------------------------------------------------------ members

def _int_query(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise Invalid(f"{name} must be an integer") from None
    if not low <= value <= high:
        raise Invalid(f"{name} must be between {low} and {high}")
    return value


@routes.get("/api/workspace/members")
async def list_members(request: web.Request) -> web.Response:
    db = _db(request)
    offset = _int_query(request, "offset", 0, 0, 10**9)
    limit = _int_query(request, "limit", 20, 1, 100)
    return web.json_response(await workspaces.page_members(
        db=db, workspace_id=caller_of(request).workspace_id, offset=offset, limit=limit))


@routes.delete("/api/workspace/members/{user_id}")
async def remove_member(request: web.Request) -> web.Response:
    db = _db(request)
    caller = owner_of(request)
    await workspaces.remove_member(db=db, workspace_id=caller.workspace_id,
                                   user_id=request.match_info["user_id"])
    return web.Response(status=204)


@routes.post("/api/workspace/leave")
async def leave_workspace(request: web.Request) -> web.Response:
    caller = caller_of(request)
    await workspaces.leave(db=_db(request), workspace_id=caller.workspace_id,
                           user_id=caller.user_id)
    return web.Response(status=204)


# ------------------------------------------------------------------------------ invites

@routes.get("/api/workspace/invites")
async def list_invites(request: web.Request) -> web.Response:
    db = _db(request)
    caller = owner_of(request)
    return web.json_response({"invites": await invites.list_pending(
        db=db, workspace_id=caller.workspace_id)})


@routes.post("/api/workspace/invites")
async def create_invite(request: web.Request) -> web.Response:
    db = _db(request)
    caller = owner_of(request)
    body = await _object(request)
    created = await invites.create(db=db, workspace_id=caller.workspace_id,
                                   invited_by=caller.user_id, email=body.get("email"))
    return web.json_response(created, status=201)


@routes.delete("/api/workspace/invites/{invite_id}")
async def revoke_invite(request: web.Request) -> web.Response:
    db = _db(request)
    caller = owner_of(request)
    await invites.revoke(db=db, workspace_id=caller.workspace_id,
                         invite_id=request.match_info["invite_id"])
    return web.Response(status=204)


@routes.post("/api/invites/{token}/accept")
async def accept_invite(request: web.Request) -> web.Response:
    return web.json_response(await invites.accept_for_user(
        db=_db(request), token=request.match_info["token"], user_id=caller_of(request).user_id))


# ------------------------------------------------------------------------------ API keys

@routes.get("/api/workspace/api-keys")
async def list_api_keys(request: web.Request) -> web.Response:
    """Owners see every key of the workspace, members their own; never a key itself."""
    db = _db(request)
    caller = caller_of(request)
    found = await api_keys.list_keys(db=db, workspace_id=caller.workspace_id,
                                     user_id=None if caller.is_owner else caller.user_id)
    return web.json_response({"api_keys": found})


@routes.post("/api/workspace/api-keys")
async def create_api_key(request: web.Request) -> web.Response:
    """A new key for the caller in this workspace; the plaintext is in this answer only."""
    db = _db(request)
    caller = caller_of(request)
    body = await _object(request)
    created = await api_keys.create(db=db, workspace_id=caller.workspace_id,
                                    user_id=caller.user_id, name=body.get("name"),
                                    description=body.get("description", ""),
                                    expires_at=body.get("expires_at"))
    return web.json_response(created, status=201,
                             headers={"Cache-Control": "no-store"})


@routes.delete("/api/workspace/api-keys/{id}")
async def revoke_api_key(request: web.Request) -> web.Response:
    db = _db(request)
    caller = caller_of(request)
    await api_keys.revoke(db=db, workspace_id=caller.workspace_id, key_id=request.match_info["id"],
                          role=caller.role, user_id=caller.user_id)
    return web.Response(status=204)


@routes.get("/api/workspace/members/{user_id}/api-keys")
async def list_member_api_keys(request: web.Request) -> web.Response:
    db = _db(request)
    caller = caller_of(request)
    member = request.match_info["user_id"]
    if member != caller.user_id:
        owner_of(request)
    return web.json_response({"api_keys": await api_keys.list_keys(
        db=db, workspace_id=caller.workspace_id, user_id=member)})


@routes.delete("/api/workspace/members/{user_id}/api-keys")
async def bulk_revoke_member_api_keys(request: web.Request) -> web.Response:
    db = _db(request)
    caller = owner_of(request)
    count = await api_keys.revoke_all_of(db=db, workspace_id=caller.workspace_id,
                                         user_id=request.match_info["user_id"])
    return web.json_response({"revoked_count": count})


def setup(app: web.Application) -> None:
    add_cloud_routes(app, routes)
