"""`POST /api/feedback`: stored with the caller's user and workspace."""

from __future__ import annotations

import json
import uuid

from aiohttp import web
from sqlalchemy import insert

from opencomfy.http.caller import caller_of
from opencomfy.http.errors import ApiError, read_json
from opencomfy.http.routing import add_cloud_routes, services_of
from opencomfy.identity import models as m
from opencomfy.identity.common import now_ms

routes = web.RouteTableDef()

FEEDBACK_TYPES = ("missing_nodes", "general", "missing_models")
MAX_FEEDBACK_BYTES = 64 * 1024


@routes.post("/api/feedback")
async def submit_feedback(request: web.Request) -> web.Response:
    body = await read_json(request, max_bytes=MAX_FEEDBACK_BYTES)
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_request", "request body must be a JSON object")
    kind, content = body.get("type"), body.get("content")
    rating, metadata = body.get("rating"), body.get("metadata", {})
    if kind not in FEEDBACK_TYPES:
        raise ApiError(400, "invalid_request", f"type must be one of {', '.join(FEEDBACK_TYPES)}")
    if content is not None and not isinstance(content, str):
        raise ApiError(400, "invalid_request", "content must be a string")
    if rating is not None and (type(rating) is not int or not 1 <= rating <= 5):
        raise ApiError(400, "invalid_request", "rating must be an integer from 1 to 5")
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        raise ApiError(400, "invalid_request", "metadata must be an object")
    caller = caller_of(request)
    row = {"id": str(uuid.uuid4()), "workspace_id": caller.workspace_id,
           "user_id": caller.user_id, "type": kind, "content": content, "rating": rating,
           "metadata": json.loads(json.dumps(metadata)), "created_at": now_ms()}
    async with services_of(request).db.write() as conn:
        await conn.execute(insert(m.feedback).values(**row))
    return web.json_response({"id": row["id"]}, status=201)


def setup(app: web.Application) -> None:
    add_cloud_routes(app, routes)
