"""Who am I, and credentials: /api/user, /api/auth/session, /api/auth/token, and the JWKS."""

from __future__ import annotations

from aiohttp import web

from opencomfy.http.auth import SESSION_COOKIE, is_secure
from opencomfy.http.caller import caller_of
from opencomfy.http.errors import ApiError, read_json
from opencomfy.http.routing import add_cloud_routes, services_of
from opencomfy.identity import sessions, users
from opencomfy.identity.common import OWNER
from opencomfy.identity.errors import NotFound, Unauthenticated

routes = web.RouteTableDef()

OWNER_PERMISSIONS = ["workspace:use", "workspace:manage", "members:manage", "api_keys:manage",
                     "billing:manage"]
MEMBER_PERMISSIONS = ["workspace:use", "api_keys:own"]


@routes.get("/api/user")
async def get_user(request: web.Request) -> web.Response:
    """The caller: `{id, status}` (plus email and workspace where known)."""
    caller = caller_of(request)
    body = {"id": caller.user_id, "status": "active", "workspace_id": caller.workspace_id,
            "role": caller.role}
    if caller.credential != "local":
        user = await users.get_user(db=services_of(request).identity.db, user_id=caller.user_id)
        if user is not None:
            body.update(status=user["status"], email=user["email"], name=user["name"])
    return web.json_response(body)


def set_session_cookie(request: web.Request, response: web.StreamResponse, token: str,
                       max_age_s: int) -> None:
    response.set_cookie(SESSION_COOKIE, token, max_age=max_age_s, path="/", httponly=True,
                        secure=is_secure(request), samesite="Lax")


@routes.post("/api/auth/session")
async def create_session(request: web.Request) -> web.Response:
    """Turn the presented API key or bearer token into a session cookie (server-side record)."""
    caller = caller_of(request)
    if caller.credential == "local":
        return web.json_response({"success": True})
    token, expires_ms = await sessions.create(db=services_of(request).db, user_id=caller.user_id,
                                              workspace_id=caller.workspace_id)
    ttl_s = sessions.SESSION_TTL_MS // 1000
    response = web.json_response({"success": True, "expiresIn": ttl_s})
    set_session_cookie(request, response, token, ttl_s)
    return response


@routes.delete("/api/auth/session")
async def delete_session(request: web.Request) -> web.Response:
    """Log out: revoke the server-side record (if any) and clear the cookie."""
    token = request.cookies.get(SESSION_COOKIE)
    if token and services_of(request).config.auth == "required":
        await sessions.revoke(db=services_of(request).db, token=token)
    response = web.json_response({"success": True})
    response.set_cookie(SESSION_COOKIE, "", max_age=-1, path="/", httponly=True,
                        secure=is_secure(request), samesite="Lax")
    return response


@routes.post("/api/auth/token")
async def exchange_token(request: web.Request) -> web.Response:
    """An identity token (ours or the external issuer's) for a workspace-scoped token of ours."""
    caller = caller_of(request)
    body = await read_json(request, default={})
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_request", "request body must be a JSON object")
    if caller.credential == "local":
        raise NotFound("token exchange needs --auth required")
    if caller.credential not in ("identity", "oidc"):
        raise Unauthenticated("an identity token is required")
    workspace_id = body.get("workspace_id") or caller.workspace_id
    if not isinstance(workspace_id, str):
        raise ApiError(400, "invalid_request", "workspace_id must be a string")
    exchanged = await services_of(request).identity.exchange_for_workspace(
        user_id=caller.user_id, workspace_id=workspace_id)
    permissions = OWNER_PERMISSIONS if exchanged["role"] == OWNER else MEMBER_PERMISSIONS
    return web.json_response({**exchanged, "permissions": permissions})


async def get_jwks(request: web.Request) -> web.Response:
    """Our signing keys' public halves; cached a day (keys live two rotation periods)."""
    body = services_of(request).identity.keys.jwks_bytes()
    return web.Response(body=body, content_type="application/json",
                        headers={"Cache-Control": "public, max-age=86400"})


def setup(app: web.Application) -> None:
    add_cloud_routes(app, routes)
    app.router.add_get("/.well-known/jwks.json", get_jwks)
