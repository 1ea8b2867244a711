"""`POST /api/feedback`: stored with the caller's user and workspace."""

from __future__ import annotations

from aiohttp import web

from opencomfy.http.caller import caller_of
from opencomfy.http.errors import ApiError, read_json
from opencomfy.http.routing import add_cloud_routes, services_of
from opencomfy.identity import feedback
from opencomfy.identity.feedback import FEEDBACK_TYPES

routes = web.RouteTableDef()

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
    feedback_id = await feedback.submit(
        db=services_of(request).db, workspace_id=caller.workspace_id, user_id=caller.user_id,
        kind=kind, content=content, rating=rating, metadata=metadata)
    return web.json_response({"id": feedback_id}, status=201)


def setup(app: web.Application) -> None:
    add_cloud_routes(app, routes)
