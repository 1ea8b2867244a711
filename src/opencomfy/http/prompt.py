"""The prompt queue, history and jobs routes (ComfyUI's and the spec's), over JobService.

Each handler parses its input (jobs.schemas), calls one JobService function, and renders the
result through the ComfyUI wire adapter (jobs.comfy_format). Every route answers at `/x`
and `/api/x`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web

from opencomfy.http.caller import workspace_of
from opencomfy.http.errors import (ApiError, error_response, parse_json_body, read_body,
                                   read_json)
from opencomfy.http.routing import add_api_routes, services_of
from opencomfy.jobs import comfy_format as cf
from opencomfy.jobs.records import DuplicatePromptId, JobNotFound
from opencomfy.jobs.schemas import (BadRequest, flag, id_list, is_canonical_uuid,
                                    parse_history_window, parse_jobs_query, parse_prompt_request)

log = logging.getLogger(__name__)

routes = web.RouteTableDef()

def raw_json(text: str, status: int = 200) -> web.Response:
    return web.Response(text=text, status=status, content_type="application/json")


def prompt_error(kind: str, message: str, details: str = "", status: int = 400,
                 node_errors: dict | None = None) -> web.Response:
    """ComfyUI's /prompt error shape: `{"error": {type, message, details, extra_info}, "node_errors"}`."""
    return web.json_response({"error": {"type": kind, "message": message, "details": details,
                                        "extra_info": {}},
                              "node_errors": node_errors or {}}, status=status)


async def _object_body(request: web.Request, *, default: Any = ...) -> dict:
    body = await read_json(request, default=default)
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_request", "request body must be a JSON object")
    return body


def _bad(exc: BadRequest) -> web.Response:
    return error_response(400, exc.kind, exc.message)


# ------------------------------------------------------------------------------ /prompt

@routes.get("/prompt")
async def get_prompt(request: web.Request) -> web.Response:
    """How many jobs are queued or running: `{"exec_info": {"queue_remaining": N}}`."""
    n = await services_of(request).jobs.queue_remaining(workspace_id=workspace_of(request))
    return web.json_response({"exec_info": {"queue_remaining": n}})


@routes.post("/prompt")
async def post_prompt(request: web.Request) -> web.Response:
    """Validate a prompt through the engine, store the job, then answer with its id."""
    services = services_of(request)
    config = request.app["config"]
    try:
        raw = await read_body(request, max_bytes=config.max_prompt_bytes)
        # Each node has one "class_type" key: counting them costs milliseconds where parsing
        # a prompt far over the cap would stall the server before the count below.
        if raw.count(b'"class_type"') > config.max_prompt_nodes:
            return _too_many_nodes(config.max_prompt_nodes)
        body = await parse_json_body(raw)
    except ApiError as exc:
        kind = "invalid_json" if exc.status == 400 else exc.code
        return prompt_error(kind, "Invalid JSON" if exc.status == 400 else "Prompt too large",
                            exc.message, status=exc.status)
    if isinstance(body, dict):
        body = _run_on_prompt_handlers(body)
    try:
        req = parse_prompt_request(body)
    except BadRequest as exc:
        return prompt_error(exc.kind, exc.message, exc.details)
    if len(req.prompt) > config.max_prompt_nodes:
        return _too_many_nodes(config.max_prompt_nodes)
    result = await _validate(services.validator, req)
    if not result.ok:
        return web.json_response({"error": result.error, "node_errors": result.node_errors}, status=400)
    try:
        job = await services.jobs.submit(
            workspace_id=workspace_of(request), prompt=req.prompt,
            outputs_to_execute=result.outputs, prompt_id=req.prompt_id, number=req.number,
            front=req.front, extra_data=req.extra_data, client_id=req.client_id,
            workflow_id=req.workflow_id, workflow_version_id=req.workflow_version_id)
    except DuplicatePromptId as exc:
        return prompt_error("duplicate_prompt_id", "Duplicate prompt_id", str(exc))
    return web.json_response({"prompt_id": job.prompt_id, "number": job.number,
                              "node_errors": result.node_errors})


def _too_many_nodes(limit: int) -> web.Response:
    return prompt_error("too_many_nodes", "Prompt has too many nodes",
                        f"a prompt may have at most {limit} nodes (--max-prompt-nodes)")


#: Prompts with more nodes than this validate on a worker thread (with its own event loop for
#: async VALIDATE_INPUTS), so a huge one never stalls other requests. Smaller ones, every real
#: workflow, validate on the server's loop as in ComfyUI. Validation only reads the registry
#: and this request's own prompt, so a thread is safe.
OFF_LOOP_VALIDATION_NODES = 1000


async def _validate(validator, req):
    prompt, targets = req.prompt, req.partial_execution_targets
    if len(prompt) <= OFF_LOOP_VALIDATION_NODES:
        return await validator.validate(prompt, partial_execution_targets=targets)
    return await asyncio.to_thread(
        lambda: asyncio.run(validator.validate(prompt, partial_execution_targets=targets)))


def _run_on_prompt_handlers(body: dict) -> dict:
    """Custom nodes may rewrite every POST /prompt body (`PromptServer.add_on_prompt_handler`)."""
    from opencomfy.compat.server import PromptServer

    server = PromptServer.instance
    if server is None or not getattr(server, "on_prompt_handlers", None):
        return body
    rewritten = server.trigger_on_prompt(body)
    return rewritten if isinstance(rewritten, dict) else body


# ------------------------------------------------------------------------------- /queue

@routes.get("/queue")
async def get_queue(request: web.Request) -> web.Response:
    """Running and pending jobs as ComfyUI's 5-tuples, pending in queue order."""
    running, pending = await services_of(request).jobs.queue_snapshot(workspace_id=workspace_of(request))
    return raw_json(cf.queue_json(running, pending))


@routes.post("/queue")
async def post_queue(request: web.Request) -> web.Response:
    """`{"clear": true}` empties the queue, `{"delete": [ids]}` takes pending jobs off it."""
    body = await _object_body(request)
    jobs, ws = services_of(request).jobs, workspace_of(request)
    try:
        clear, delete = flag(body, "clear"), id_list(body, "delete")
    except BadRequest as exc:
        return _bad(exc)
    deleted: list[str] = []
    if clear:
        deleted += await jobs.clear_pending(workspace_id=ws)
    if delete:
        deleted += await jobs.delete_pending(workspace_id=ws, prompt_ids=delete)
    return web.json_response({"cleared": clear, "deleted": deleted})


@routes.post("/interrupt")
async def post_interrupt(request: web.Request) -> web.Response:
    """Stop the running job (`{"prompt_id": id}`: only if that one is running)."""
    body = await _object_body(request, default={})
    prompt_id = body.get("prompt_id")
    if prompt_id is not None and not isinstance(prompt_id, str):
        return error_response(400, "invalid_parameter", "prompt_id must be a string")
    await services_of(request).jobs.request_interrupt(workspace_id=workspace_of(request),
                                                      prompt_id=prompt_id)
    return web.Response(status=200)


@routes.post("/free")
async def post_free(request: web.Request) -> web.Response:
    """Ask the worker to unload models and/or free cached memory after the current job."""
    body = await _object_body(request, default={})
    try:
        unload, free = flag(body, "unload_models"), flag(body, "free_memory")
    except BadRequest as exc:
        return _bad(exc)
    services_of(request).jobs.request_free(workspace_id=workspace_of(request),
                                           unload_models=unload, free_memory=free)
    return web.Response(status=200)


# ----------------------------------------------------------------------------- /history

@routes.get("/history")
async def get_history(request: web.Request) -> web.Response:
    """Finished jobs `{prompt_id: entry}`, windowed by `max_items`/`offset` as ComfyUI."""
    try:
        window = parse_history_window(request.query, default_offset=-1)
    except BadRequest as exc:
        return _bad(exc)
    rows = await services_of(request).jobs.history_page(
        workspace_id=workspace_of(request), max_items=window.max_items, offset=window.offset)
    return raw_json(cf.history_json(rows))


@routes.get("/history/{prompt_id}")
async def get_history_entry(request: web.Request) -> web.Response:
    """`{prompt_id: entry}`, or `{}` when the job is unknown or not finished."""
    row = await services_of(request).jobs.history_entry(
        workspace_id=workspace_of(request), prompt_id=request.match_info["prompt_id"])
    return raw_json(cf.history_json([row] if row is not None else []))


@routes.post("/history")
async def post_history(request: web.Request) -> web.Response:
    """`{"clear": true}` forgets every finished job, `{"delete": [ids]}` some of them."""
    body = await _object_body(request)
    jobs, ws = services_of(request).jobs, workspace_of(request)
    try:
        clear, delete = flag(body, "clear"), id_list(body, "delete")
    except BadRequest as exc:
        return _bad(exc)
    if clear:
        await jobs.delete_history(workspace_id=ws, prompt_ids=None)
    if delete:
        await jobs.delete_history(workspace_id=ws, prompt_ids=delete)
    return web.Response(status=200)


@routes.get("/history_v2")
async def get_history_v2(request: web.Request) -> web.Response:
    """The spec's history: `{"history": [entry]}`, newest first, `max_items` from `offset`."""
    try:
        window = parse_history_window(request.query, default_offset=0)
    except BadRequest as exc:
        return _bad(exc)
    # The spec declares plain integers (no minimum, no 400): a negative offset counts from the
    # newest entry like 0, and a negative max_items asks for nothing.
    offset = max(window.offset or 0, 0)
    if window.max_items is not None and window.max_items < 0:
        return web.json_response({"history": []})
    rows = await services_of(request).jobs.history_page_newest_first(
        workspace_id=workspace_of(request), offset=offset, limit=window.max_items)
    return web.json_response({"history": [cf.history_v2_entry(r) for r in rows]})


@routes.get("/history_v2/{prompt_id}")
async def get_history_v2_entry(request: web.Request) -> web.Response:
    """`{prompt_id: detail}` with the full prompt, or 404."""
    prompt_id = request.match_info["prompt_id"]
    row = await services_of(request).jobs.history_entry(workspace_id=workspace_of(request),
                                                        prompt_id=prompt_id)
    if row is None:
        return error_response(404, "not_found", "History not found for this prompt")
    return web.json_response({prompt_id: cf.history_v2_detail(row)})


# -------------------------------------------------------------------------------- /jobs

def _job_not_found() -> web.Response:
    return error_response(404, "not_found", "Job not found", error="Job not found")


@routes.get("/jobs")
async def list_jobs(request: web.Request) -> web.Response:
    """A page of jobs, filtered by status / workflow / output type, sorted, with pagination."""
    try:
        query = parse_jobs_query(request.query)
    except BadRequest as exc:
        return _bad(exc)
    page = await services_of(request).jobs.list_jobs(
        workspace_id=workspace_of(request), statuses=query.statuses,
        workflow_id=query.workflow_id, output_type=query.output_type, sort_by=query.sort_by,
        descending=query.descending, offset=query.offset, limit=query.limit)
    return web.json_response({
        "jobs": [cf.job_entry(r) for r in page.rows],
        "pagination": {"offset": query.offset, "limit": query.limit, "total": page.total,
                       "has_more": query.offset + len(page.rows) < page.total},
    })


@routes.get("/jobs/{job_id}")
async def get_job(request: web.Request) -> web.Response:
    """Everything about one job: status, outputs, timeline and the workflow."""
    try:
        row = await services_of(request).jobs.get_job(workspace_id=workspace_of(request),
                                                      job_id=request.match_info["job_id"])
    except JobNotFound:
        return _job_not_found()
    return web.json_response(cf.job_detail(row))


@routes.post("/jobs/cancel")
async def cancel_jobs(request: web.Request) -> web.Response:
    """Cancel several jobs `{"job_ids": [...]}`; unknown ids are skipped."""
    body = await _object_body(request)
    try:
        ids = id_list(body, "job_ids") or []
    except BadRequest as exc:
        return _bad(exc)
    jobs, ws = services_of(request).jobs, workspace_of(request)
    cancelled: list[str] = []
    for job_id in ids:
        try:
            if await jobs.cancel(workspace_id=ws, job_id=job_id):
                cancelled.append(job_id)
        except JobNotFound:
            continue
    return web.json_response({"cancelled": bool(cancelled), "job_ids": cancelled})


@routes.post("/jobs/{job_id}/cancel")
async def cancel_job(request: web.Request) -> web.Response:
    """Cancel one job, idempotently: `{"cancelled": false}` when it had already ended."""
    job_id = request.match_info["job_id"]
    if not is_canonical_uuid(job_id):
        return web.json_response({"message": "job_id must be a UUID", "code": "invalid_job_id"},
                                 status=400)
    try:
        done = await services_of(request).jobs.cancel(workspace_id=workspace_of(request), job_id=job_id)
    except JobNotFound:
        return _job_not_found()
    return web.json_response({"cancelled": done})


@routes.get("/job/{job_id}/status")
async def get_job_status(request: web.Request) -> web.Response:
    """The deprecated status view of one job (RFC 3339 times; failed reads `error`)."""
    try:
        row = await services_of(request).jobs.get_job(workspace_id=workspace_of(request),
                                                      job_id=request.match_info["job_id"])
    except JobNotFound:
        return _job_not_found()
    return web.json_response(cf.job_status(row))


def setup(app: web.Application) -> None:
    add_api_routes(app, routes)
