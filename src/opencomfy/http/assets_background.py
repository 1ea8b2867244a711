"""Asset routes that run in the background or reach outside: download, export, import,
remote-metadata, from-workflow, seed (start, status, cancel) and prune."""

from __future__ import annotations

import re
import time

from aiohttp import web

from opencomfy.assets import archive, download, library, seed
from opencomfy.assets.errors import AssetError, ContentTooLarge, InvalidAssetInput
from opencomfy.assets.schemas import normalize_tags
from opencomfy.http.assets_params import bool_param, json_object, parse_form_tags
from opencomfy.http.assets_wire import asset_response
from opencomfy.http.caller import workspace_of
from opencomfy.http.errors import read_json
from opencomfy.http.routing import add_cloud_routes, services_of
from opencomfy.tasks import TaskContext, TaskFailed
from opencomfy.tasks.schemas import rfc3339

routes = web.RouteTableDef()
EXPORT_NAME_RE = re.compile(r"^[a-zA-Z0-9_-]+\.zip$")
EXPORT_TASK = "asset_export"
DOWNLOAD_TASK = "asset_download"
SIGNED_URL_SECONDS = 3600


def _download_work(*, services, url: str, tags: list[str], user_metadata, preview_id):
    async def work(ctx: TaskContext) -> dict:
        try:
            fetched = await download.fetch(url, service=services.assets, config=services.config, ctx=ctx)
            asset, created_new = await services.assets.create_from_staged(
                workspace_id=ctx.workspace_id, staged=fetched.staged, name=fetched.filename, tags=tags,
                mime_type=None, user_metadata=user_metadata, preview_id=preview_id,
                system_metadata={"source_url": url}, source_url=url)
        except AssetError as exc:
            raise TaskFailed(f"{exc.code}: {exc.message}") from None
        return {"asset_id": asset["id"], "asset": asset, "created_new": created_new}

    return work


async def _start_download(request: web.Request, body: dict, *, url_field: str) -> web.Response:
    services = services_of(request)
    url = body.get(url_field)
    await download.check_url(url, config=services.config)
    assert isinstance(url, str)  # check_url refused anything else
    tags = body.get("tags") or ["models"]
    metadata = body.get("user_metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise InvalidAssetInput("user_metadata must be an object", field="user_metadata")
    tags = normalize_tags(tags)
    ws = workspace_of(request)
    # Only the workspace's own earlier download is answered at once; a URL only another
    # workspace fetched starts a task exactly as a fresh one does (no existence oracle).
    existing = await services.assets.from_source_url(workspace_id=ws, url=url)
    if existing is not None:
        return asset_response(request, {**existing, "created_new": False}, status=200)
    task, _ = await services.tasks.submit(
        workspace_id=ws, task_name=DOWNLOAD_TASK, idempotency_key=f"download:{url}",
        payload={"source_url": url, "tags": tags}, work=_download_work(
            services=services, url=url, tags=tags, user_metadata=metadata,
            preview_id=body.get("preview_id")))
    return web.json_response({"task_id": task["id"], "status": task["status"],
                              "message": "Download task created. Use task_id to track progress."},
                             status=202)


@routes.post("/api/assets/download")
async def create_download(request: web.Request) -> web.Response:
    """200 with the workspace's asset when it already downloaded the URL, else 202 with a task."""
    body = json_object(await read_json(request, max_bytes=1 << 20))
    return await _start_download(request, body, url_field="source_url")


async def upload_from_url(request: web.Request) -> web.Response:
    """POST /api/assets with a JSON `{url, name}` body: fetched now, answered 201 AssetCreated
    (the source's 404 and 401/403 are passed on; other failures are 422)."""
    services = services_of(request)
    body = json_object(await read_json(request, max_bytes=1 << 20))
    if not isinstance(body.get("name"), str):
        raise InvalidAssetInput("name is required", field="name")
    url = body.get("url")
    await download.check_url(url, config=services.config)
    assert isinstance(url, str)  # check_url refused anything else
    metadata = body.get("user_metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise InvalidAssetInput("user_metadata must be an object", field="user_metadata")
    fetched = await download.fetch(url, service=services.assets, config=services.config)
    asset, created_new = await services.assets.create_from_staged(
        workspace_id=workspace_of(request), staged=fetched.staged, name=body["name"],
        tags=normalize_tags(body.get("tags") or []), user_metadata=metadata,
        preview_id=body.get("preview_id"), system_metadata={"source_url": url}, source_url=url)
    return asset_response(request, {**asset, "created_new": created_new}, status=201)


@routes.get("/api/assets/remote-metadata")
async def remote_metadata(request: web.Request) -> web.Response:
    url = request.query.get("url")
    if not url:
        raise InvalidAssetInput("url is required", field="url")
    return web.json_response(await download.remote_metadata(url, config=services_of(request).config))


@routes.post("/api/assets/export")
async def create_export(request: web.Request) -> web.Response:
    """202 with the task that builds the zip."""
    services = services_of(request)
    payload = archive.check_export_request(json_object(await read_json(request, max_bytes=1 << 20)))

    async def work(ctx: TaskContext) -> dict:
        return await archive.run_export(ctx, service=services.assets)

    task, _ = await services.tasks.submit(workspace_id=workspace_of(request), task_name=EXPORT_TASK,
                                          payload=payload, work=work)
    return web.json_response({"task_id": task["id"], "status": task["status"],
                              "message": "Export task created. Use task_id to track progress."},
                             status=202)


@routes.get("/api/assets/exports/{name}")
async def get_export(request: web.Request) -> web.StreamResponse:
    """A URL to download the export (signed on S3; this route with ?download=true locally)."""
    services, ws, name = services_of(request), workspace_of(request), request.match_info["name"]
    if not EXPORT_NAME_RE.match(name):
        raise InvalidAssetInput("invalid export name", field="exportName")
    task_id = name.removeprefix("export-").removesuffix(".zip")
    task = await services.tasks.get(workspace_id=ws, task_id=task_id) if len(task_id) == 36 else None
    if task is None or task["task_name"] != EXPORT_TASK or task["status"] != "completed":
        return web.json_response({"code": "not_found", "message": "export not found"}, status=404)
    key = archive.export_key(ws, name)
    store = services.assets.store
    if bool_param(request, "download", default=False):
        path = store.local_path(key)
        if path is None:
            return web.json_response({"code": "not_found", "message": "export not found"}, status=404)
        return web.FileResponse(path, headers={"Content-Type": "application/zip",
                                               "Content-Disposition": f'attachment; filename="{name}"'})
    expires = int((time.time() + SIGNED_URL_SECONDS) * 1000)
    url = await store.signed_url(key, expires_in=SIGNED_URL_SECONDS, filename=name,
                                 content_type="application/zip")
    return web.json_response({"url": url or f"/api/assets/exports/{name}?download=true",
                              "expires_at": rfc3339(expires)})


@routes.post("/api/assets/import")
async def import_assets(request: web.Request) -> web.Response:
    """Published assets by id (JSON), or the files of a zip archive (application/zip)."""
    services, ws = services_of(request), workspace_of(request)
    if request.content_type in ("application/zip", "application/x-zip-compressed"):
        limit = services.config.max_upload_bytes
        if request.content_length is not None and request.content_length > limit:
            raise ContentTooLarge("the archive is larger than the upload limit")
        staged = await services.assets.stage_stream(request.content.iter_chunked(1 << 20), limit=limit)
        tags = parse_form_tags(request.query.getall("tags", []))
        created = await archive.import_zip(service=services.assets, workspace_id=ws, archive_blob=staged,
                                           tags=tags, max_expanded=max(limit * 4, 1 << 30))
        return web.json_response({"assets": [
            library.asset_info({**a, "content_hash": a["asset_hash"]}, a["tags"], public=False,
                               in_library=True) for a in created]})
    body = json_object(await read_json(request, max_bytes=1 << 20))
    infos = await library.import_published(service=services.assets, workspace_id=ws,
                                           asset_ids=body.get("published_asset_ids"),
                                           share_id=body.get("share_id"))
    return web.json_response({"assets": infos})


@routes.post("/api/assets/from-workflow")
async def from_workflow(request: web.Request) -> web.Response:
    body = json_object(await read_json(request, max_bytes=16 << 20))
    if "workflow_api_json" not in body:
        raise InvalidAssetInput("workflow_api_json is required", field="workflow_api_json")
    infos = await library.assets_of_workflow(service=services_of(request).assets,
                                             workspace_id=workspace_of(request),
                                             workflow=body["workflow_api_json"])
    return web.json_response({"assets": infos})


async def _latest_seed(request: web.Request) -> dict | None:
    tasks, _ = await services_of(request).tasks.page(workspace_id=workspace_of(request),
                                                     task_name=seed.SEED_TASK, limit=1)
    return tasks[0] if tasks else None


@routes.post("/api/assets/seed")
async def start_seed(request: web.Request) -> web.Response:
    """Scan the folders in the background; a scan already running is not started twice."""
    services = services_of(request)
    body = json_object(await read_json(request, default={}, max_bytes=1 << 16))
    roots = seed.check_roots(body.get("roots"))

    async def work(ctx: TaskContext) -> dict:
        return await seed.run_seed(ctx, service=services.assets, config=services.config)

    task, created = await services.tasks.submit(
        workspace_id=workspace_of(request), task_name=seed.SEED_TASK, idempotency_key="seed",
        payload={"roots": roots}, work=work)
    return web.json_response({"status": "started" if created else "already_running",
                              "task_id": task["id"]})


@routes.get("/api/assets/seed/status")
async def seed_status(request: web.Request) -> web.Response:
    task = await _latest_seed(request)
    if task is None:
        return web.json_response({"status": "idle"})
    details = task["result"] or {}
    status = "cancelled" if task["error_message"] == "cancelled" else task["status"]
    return web.json_response({**details, "status": status, "task_id": task["id"],
                              "progress": task["progress"], "error": task["error_message"]})


@routes.post("/api/assets/seed/cancel")
async def cancel_seed(request: web.Request) -> web.Response:
    task = await _latest_seed(request)
    if task is not None and services_of(request).tasks.request_cancel(task["id"]):
        return web.json_response({"status": "cancelling", "task_id": task["id"]})
    return web.json_response({"status": "idle"})


@routes.post("/api/assets/prune")
async def prune_assets(request: web.Request) -> web.Response:
    marked = await seed.prune(service=services_of(request).assets, workspace_id=workspace_of(request))
    return web.json_response({"status": "completed", "marked": marked})


def setup(app: web.Application) -> None:
    add_cloud_routes(app, routes)
