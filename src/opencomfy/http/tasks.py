"""Task routes: GET /api/tasks (filtered, paginated) and GET /api/tasks/{task_id}."""

from __future__ import annotations

import uuid

from aiohttp import web

from opencomfy.http.caller import workspace_of
from opencomfy.http.errors import error_response
from opencomfy.http.routing import add_cloud_routes, services_of
from opencomfy.jobs.schemas import QUERY_INT_MAX
from opencomfy.tasks.schemas import parse_rfc3339, task_entry, task_response
from opencomfy.tasks.transitions import STATUSES

routes = web.RouteTableDef()


def _invalid(message: str) -> web.Response:
    return error_response(422, "validation_error", message)


@routes.get("/api/tasks")
async def list_tasks(request: web.Request) -> web.Response:
    """TasksListResponse, newest first unless sort_order=asc; 422 on a bad filter."""
    q = request.query
    statuses = [s.strip() for s in q.get("status", "").split(",") if s.strip()]
    if any(s not in STATUSES for s in statuses):
        return _invalid(f"status must be a comma-separated list of {', '.join(STATUSES)}")
    times = {}
    for name in ("created_after", "created_before"):
        if q.get(name):
            try:
                times[name] = parse_rfc3339(q[name])
            except ValueError:
                return _invalid(f"{name} must be an RFC 3339 timestamp")
    sort_order = q.get("sort_order", "desc")
    if sort_order not in ("asc", "desc"):
        return _invalid("sort_order must be asc or desc")
    try:
        offset, limit = int(q.get("offset", 0)), int(q.get("limit", 20))
    except ValueError:
        return _invalid("offset and limit must be integers")
    if offset < 0 or not 1 <= limit <= 100:
        return _invalid("offset must be >= 0 and limit between 1 and 100")
    offset = min(offset, QUERY_INT_MAX)  # SQL's OFFSET is 64-bit; past it every page is empty
    rows, total = await services_of(request).tasks.page(
        workspace_id=workspace_of(request), task_name=q.get("task_name") or None,
        idempotency_key=q.get("idempotency_key") or None, statuses=statuses or None,
        created_after=times.get("created_after"), created_before=times.get("created_before"),
        ascending=sort_order == "asc", offset=offset, limit=limit)
    return web.json_response({"tasks": [task_entry(r) for r in rows], "pagination": {
        "offset": offset, "limit": limit, "total": total, "has_more": offset + len(rows) < total}})


@routes.get("/api/tasks/{task_id}")
async def get_task(request: web.Request) -> web.Response:
    """TaskResponse; 404 for an unknown id or another workspace's task."""
    task_id = request.match_info["task_id"]
    try:
        task_id = str(uuid.UUID(task_id))
    except ValueError:
        return error_response(404, "not_found", "task not found")
    row = await services_of(request).tasks.get(workspace_id=workspace_of(request), task_id=task_id)
    if row is None:
        return error_response(404, "not_found", "task not found")
    return web.json_response(task_response(row))


def setup(app: web.Application) -> None:
    add_cloud_routes(app, routes)
