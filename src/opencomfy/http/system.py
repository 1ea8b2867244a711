"""System and catalogue routes: /object_info, /system_stats, /features, /extensions, /i18n,
/node_replacements, /global_subgraphs, /workflow_templates, and /health.

All of them answer at the bare path and under `/api` (ComfyUI's aliasing).
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import logging
import os
import re
import sys
from typing import Any

import psutil
from aiohttp import web

from opencomfy import __version__
from opencomfy.catalogue import etag_matches
from opencomfy.config import Config
from opencomfy.http import packs
from opencomfy.http.errors import error_response
from opencomfy.http.routing import add_api_routes, services_of

log = logging.getLogger(__name__)
routes = web.RouteTableDef()

#: The ComfyUI release whose API this server speaks (reported as `comfyui_version`).
COMFYUI_COMPATIBLE_VERSION = "0.8.2"

_HEALTH_TIMEOUT_S = 2.0


def _package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return ""


def server_feature_flags(config: Config) -> dict[str, Any]:
    """The flags the server announces on `/features` and in the websocket's `feature_flags`."""
    return {
        "supports_preview_metadata": True,
        # Progress text frames carry the prompt id (the stock frontend reads this flag).
        "supports_progress_text_metadata": True,
        "max_upload_size": config.max_upload_bytes,
        "node_replacements": True,
        "extension": {"manager": {"supports_v4": False}},
    }


# -- catalogue -------------------------------------------------------------------------------

def _cached_json(request: web.Request, body: bytes, etag: str) -> web.Response:
    """The precomputed JSON bytes, or 304 when the client already holds this version."""
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if etag_matches(request.headers.get("If-None-Match"), etag):
        return web.Response(status=304, headers=headers)
    return web.Response(body=body, content_type="application/json", headers=headers)


def _accepts_gzip(request: web.Request) -> bool:
    for coding in request.headers.get("Accept-Encoding", "").split(","):
        name, _, params = coding.strip().partition(";")
        if name.strip().lower() == "gzip":
            return params.replace(" ", "") not in ("q=0", "q=0.0")
    return False


@routes.get("/object_info")
async def get_object_info(request: web.Request) -> web.Response:
    """Every node's definition, served from the catalogue's cached bytes (gzip-compressed
    ahead of time for clients that accept it)."""
    snap = await services_of(request).catalogue.snapshot()
    if snap.gzip_body is not None and _accepts_gzip(request):
        response = _cached_json(request, snap.gzip_body, snap.gzip_etag)
        if response.status == 200:
            response.headers["Content-Encoding"] = "gzip"
    else:
        response = _cached_json(request, snap.body, snap.etag)
    if snap.gzip_body is not None:
        response.headers["Vary"] = "Accept-Encoding"
    return response


@routes.get("/object_info/{node_class}")
async def get_object_info_node(request: web.Request) -> web.Response:
    """`{class: info}` for one node, or `{}` when the class is unknown (as ComfyUI)."""
    snap = await services_of(request).catalogue.snapshot()
    node_class = request.match_info["node_class"]
    return _cached_json(request, snap.node_body(node_class), snap.node_etag(node_class))


# -- system ----------------------------------------------------------------------------------

def _devices() -> list[dict[str, Any]]:
    """Compute devices with their memory. torch is consulted only when already imported
    (an embedded worker imported it): the API side never imports torch itself."""
    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            if torch.cuda.is_available():
                devices = []
                for index in range(torch.cuda.device_count()):
                    free, total = torch.cuda.mem_get_info(index)
                    reserved = torch.cuda.memory_reserved(index)
                    allocated = torch.cuda.memory_allocated(index)
                    devices.append({
                        "name": f"cuda:{index} {torch.cuda.get_device_name(index)}",
                        "type": "cuda", "index": index,
                        "vram_total": total, "vram_free": free,
                        "torch_vram_total": reserved, "torch_vram_free": reserved - allocated,
                    })
                return devices
        except Exception:  # a broken driver must not break the stats page
            log.warning("could not read CUDA device memory", exc_info=True)
    mem = psutil.virtual_memory()
    return [{
        "name": "cpu", "type": "cpu", "index": None,
        "vram_total": mem.total, "vram_free": mem.available,
        "torch_vram_total": mem.total, "torch_vram_free": mem.available,
    }]


def _pytorch_version() -> str:
    torch = sys.modules.get("torch")
    if torch is not None:
        return str(getattr(torch, "__version__", ""))
    return _package_version("torch")  # read from the installed metadata, torch stays unloaded


# Flags whose value is a credential, or may carry one (a database URL, S3 settings).
_SECRET_FLAG = re.compile(r"^--?(database-url|s3-[\w-]*|[\w-]*(secret|key|password|passwd|token|credential)[\w-]*)$",
                          re.IGNORECASE)
# scheme://user:password@ or scheme://token@ : the userinfo of any URL in any argument.
_URL_USERINFO = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^/@\s:]*)(?P<password>:[^/@\s]*)?@",
                           re.IGNORECASE)
REDACTED = "<redacted>"
# The switches the stock frontend reads from argv (it changes what it shows for them).
_FRONTEND_SWITCHES = frozenset({"--disable-api-nodes", "--enable-manager", "--enable-manager-legacy-ui",
                                "--multi-user"})


def _redact_userinfo(text: str) -> str:
    def replace(match: re.Match) -> str:
        if match.group("password"):
            return f"{match.group('scheme')}{match.group('user')}:{REDACTED}@"
        return f"{match.group('scheme')}{REDACTED}@"  # a lone userinfo is often a token
    return _URL_USERINFO.sub(replace, text)


def redact_argv(argv: list[str]) -> list[str]:
    """The command line with credentials replaced: the value of every secret-bearing flag
    (`--flag value` and `--flag=value`) and the userinfo of every URL."""
    shown: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next and not arg.startswith("-"):
            shown.append(REDACTED)
            hide_next = False
            continue
        hide_next = False
        flag, equals, _ = arg.partition("=")
        if _SECRET_FLAG.match(flag):
            if equals:
                shown.append(f"{flag}={REDACTED}")
            else:
                shown.append(arg)
                hide_next = True
            continue
        shown.append(_redact_userinfo(arg))
    return shown


def shown_argv(config: Config, argv: list[str] | None = None) -> list[str]:
    """argv as `/system_stats` shows it. With `--auth required` the route is public and the
    HTTP API has no operator role: only the program's name and the switches the frontend
    reads. Locally (the caller is the machine's own user) the whole line, redacted."""
    argv = list(sys.argv if argv is None else argv)
    if config.auth == "required":
        program = [os.path.basename(argv[0])] if argv else []
        return program + [a for a in argv[1:] if a in _FRONTEND_SWITCHES]
    return redact_argv(argv)


def system_stats(config: Config) -> dict[str, Any]:
    """ComfyUI's `/system_stats` plus every field of the spec's SystemStatsResponse."""
    mem = psutil.virtual_memory()
    templates_version = _package_version("comfyui-workflow-templates-core")
    frontend_version = _package_version("comfyui-frontend-package")
    return {
        "system": {
            "os": sys.platform,
            "ram_total": mem.total,
            "ram_free": mem.available,
            "comfyui_version": COMFYUI_COMPATIBLE_VERSION,
            "required_frontend_version": frontend_version,
            "comfyui_frontend_version": frontend_version,
            "installed_templates_version": templates_version,
            "required_templates_version": templates_version,
            "workflow_templates_version": templates_version,
            "cloud_version": f"opencomfy-{__version__}",
            "python_version": sys.version,
            "pytorch_version": _pytorch_version(),
            "embedded_python": "python_embeded" in sys.executable,
            "argv": shown_argv(config),
        },
        "devices": _devices(),
    }


@routes.get("/system_stats")
async def get_system_stats(request: web.Request) -> web.Response:
    """Versions, RAM and devices with their memory."""
    return web.json_response(system_stats(services_of(request).config))


@routes.get("/features")
async def get_features(request: web.Request) -> web.Response:
    """Server feature flags; cached briefly and privately (the frontend asks in bursts)."""
    return web.json_response(server_feature_flags(services_of(request).config), headers={
        "Cache-Control": "private, max-age=10",
        "Vary": "Authorization, X-API-Key, Cookie",
    })


# -- custom-node contributions ---------------------------------------------------------------

@routes.get("/extensions")
async def get_extensions(request: web.Request) -> web.Response:
    """URLs of the frontend's bundled extension scripts and every pack's WEB_DIRECTORY .js."""
    services = services_of(request)
    return web.json_response(packs.extension_urls(services.config, services.registry))


@routes.get("/i18n")
async def get_i18n(request: web.Request) -> web.Response:
    """Custom nodes' translations, merged per locale."""
    return web.json_response(packs.translations(services_of(request).config))


@routes.get("/node_replacements")
async def get_node_replacements(request: web.Request) -> web.Response:
    """Replacement suggestions for missing node classes (none are registered locally)."""
    return web.json_response(packs.node_replacements(services_of(request).registry))


@routes.get("/global_subgraphs")
async def get_global_subgraphs(request: web.Request) -> web.Response:
    """Subgraph blueprints from custom nodes' `subgraphs/` folders, without their data."""
    catalog = packs.subgraph_blueprints(services_of(request).config)
    return web.json_response({key: entry.summary() for key, entry in catalog.items()})


@routes.get("/global_subgraphs/{id}")
async def get_global_subgraph(request: web.Request) -> web.Response:
    """One blueprint with its full JSON (as a string), or 404."""
    entry = packs.subgraph_blueprints(services_of(request).config).get(request.match_info["id"])
    if entry is None:
        return error_response(404, "not_found", "subgraph not found")
    try:
        data = await asyncio.to_thread(entry.read)
    except OSError:
        return error_response(404, "not_found", "subgraph not found")
    return web.json_response({**entry.summary(), "data": data})


@routes.get("/workflow_templates")
async def get_workflow_templates(request: web.Request) -> web.Response:
    """`{pack: [template names]}` of custom nodes' example workflows."""
    found = packs.workflow_template_dirs(services_of(request).config)
    return web.json_response({pack: names for pack, (_, names) in found.items()})


@routes.get("/workflow_templates/{pack}/{path:.+}")
async def get_workflow_template_file(request: web.Request) -> web.StreamResponse:
    """A file of a pack's example-workflows folder (confined to that folder)."""
    found = packs.workflow_template_dirs(services_of(request).config)
    entry = found.get(request.match_info["pack"])
    path = packs.confined_file(entry[0], request.match_info["path"]) if entry else None
    if path is None:
        return error_response(404, "not_found", "template not found")
    return web.FileResponse(path)


# -- health ----------------------------------------------------------------------------------

async def _database_reachable(db: Any) -> bool:
    ping = getattr(db, "ping", None)
    if ping is not None:
        return await ping() is not False  # Database.ping answers False, or raises
    from sqlalchemy import text

    async with db.session() as session:
        await session.execute(text("SELECT 1"))
    return True


@routes.get("/health")
async def get_health(request: web.Request) -> web.Response:
    """200 `OK` while the database answers, else 503 (for probes; plain text)."""
    try:
        healthy = await asyncio.wait_for(_database_reachable(services_of(request).db),
                                         _HEALTH_TIMEOUT_S)
    except Exception as exc:  # any failure to reach the database means unhealthy
        log.warning("health check failed: %s", exc)
        healthy = False
    if not healthy:
        return web.Response(status=503, text="Service Unavailable")
    return web.Response(text="OK")


def _start_catalogue_build(app: web.Application) -> None:
    """Build the catalogue in the background right after start, so the first
    `/object_info` (the frontend asks early) does not pay for it."""
    from opencomfy.http.routing import SERVICES

    warming: set[asyncio.Future] = set()  # holds the task until it is done

    async def warm(app: web.Application) -> None:
        services = app.get(SERVICES)
        if services is None:
            return
        task = asyncio.ensure_future(services.catalogue.snapshot())
        warming.add(task)
        task.add_done_callback(_forget_warm_task(warming))

    app.on_startup.append(warm)


def _forget_warm_task(warming: set) -> Any:
    def done(task: asyncio.Future) -> None:
        warming.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("building the node catalogue failed", exc_info=task.exception())
    return done


def setup(app: web.Application) -> None:
    add_api_routes(app, routes)
    _start_catalogue_build(app)
