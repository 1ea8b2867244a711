"""Assemble the node registry at start-up: folders, core nodes, compat modules, custom nodes.

`build_registry` is the one place that touches the process-wide state custom nodes depend on
(``folder_paths``, ``comfy.cli_args.args``, ``server.PromptServer.instance``), in this order:
folders first (core nodes list input files), then core nodes (so packs cannot replace them),
then the compat modules, then ComfyUI-Manager when enabled, then the packs, then the packs'
HTTP routes.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from opencomfy.config import Config

if TYPE_CHECKING:
    from aiohttp import web

    from opencomfy.engine.registry import NodeRegistry

log = logging.getLogger(__name__)

# ComfyUI reads this file next to main.py; ours lives in the base directory.
DEFAULT_EXTRA_PATHS_FILE = "extra_model_paths.yaml"


def configure_folders(config: Config) -> list[Path]:
    """Point ``folder_paths`` at the config's folders and apply extra_model_paths files.

    Returns the yaml files that were applied. A broken file is logged and skipped: a typo in
    an optional config should not keep the server down.
    """
    from opencomfy.compat import folder_paths
    from opencomfy.compat.extra_paths import ExtraPathsError, load_extra_path_config

    folder_paths.configure(
        base_directory=config.base_directory,
        output_directory=config.output_dir,
        input_directory=config.input_dir,
        temp_directory=config.temp_dir,
        user_directory=config.user_dir,
        models_directory=config.models_dir,
        per_workspace=config.auth == "required",  # each workspace its own input/output/temp
    )
    files: list[Path] = []
    default_file = config.base_directory / DEFAULT_EXTRA_PATHS_FILE
    if default_file.is_file():
        files.append(default_file)
    files.extend(Path(p) for p in config.extra_model_paths_config)
    applied = []
    for path in files:
        try:
            load_extra_path_config(path)
            applied.append(path)
        except ExtraPathsError as exc:
            log.error("extra model paths not applied: %s", exc)
    return applied


def build_registry(config: Config, app: "web.Application | None" = None) -> "NodeRegistry":
    """The node registry the server runs with: core nodes plus every loadable custom node.

    With ``app``, the HTTP routes custom nodes declared on ``PromptServer.instance.routes``
    are added to it (at the bare path and under ``/api``, like ComfyUI).
    """
    from opencomfy import compat
    from opencomfy.compat import nodes as compat_nodes
    from opencomfy.compat.comfy import cli_args
    from opencomfy.compat.server import PromptServer
    from opencomfy.engine.registry import NodeRegistry
    from opencomfy.nodes import register_core_nodes

    configure_folders(config)
    registry = NodeRegistry()
    register_core_nodes(registry)
    core_names = frozenset(registry.classes)

    compat.install()
    cli_args.apply_config(config)
    cli_args.args.preview_method = cli_args.LatentPreviewMethod(getattr(config, "preview_method", "none"))
    _apply_pack_flags(cli_args.args, config)
    compat_nodes.bind_registry(registry, core_names)
    # Without an app (a worker process) packs still get one to add routes to, unused.
    server = PromptServer(app=app if app is not None else _detached_app())

    from opencomfy.compat import folder_paths
    from opencomfy.compat.loader import load_custom_nodes
    from opencomfy.compat.manager_bridge import ManagerBridge

    manager = ManagerBridge.load(config)
    if manager is not None:
        manager.prestartup()  # before the packs' prestartup scripts, as ComfyUI
        manager.start(app)
    if config.disable_all_custom_nodes and not config.whitelist_custom_nodes:
        log.info("custom nodes disabled (--disable-all-custom-nodes)")
    reports = load_custom_nodes(
        registry, folder_paths.get_folder_paths("custom_nodes"), core_names=core_names,
        disable_all=config.disable_all_custom_nodes, whitelist=config.whitelist_custom_nodes,
        skip=manager.should_be_disabled() if manager is not None else None)
    # Not part of NodeRegistry's contract: kept for diagnostics (start-up log, tests).
    setattr(registry, "custom_node_reports", reports)  # noqa: B010 (not in its type)

    if app is not None:
        add_custom_node_routes(app, server)
    return registry


def _apply_pack_flags(args, config: Config) -> None:
    """The flags packs (ComfyUI-Manager among them) read from ``comfy.cli_args.args``."""
    args.whitelist_custom_nodes = list(config.whitelist_custom_nodes)
    args.enable_manager = config.enable_manager
    args.disable_manager_ui = config.disable_manager_ui
    args.enable_manager_legacy_ui = config.enable_manager_legacy_ui


def _detached_app() -> "web.Application":
    from aiohttp import web

    return web.Application()


#: Routes of ComfyUI's that its packs can replace: those its managers register (users,
#: settings, user data, model listings, templates, translations, subgraphs), which ComfyUI
#: adds to its route table after the packs' routes, so a pack's route at the same path and
#: method answers first. opencomfy's stand-ins for popular packs' own routes yield too.
YIELDING_PATHS = frozenset({
    "/users", "/userdata", "/userdata/{file}", "/userdata/{file}/move/{dest}", "/v2/userdata",
    "/settings", "/settings/{id}", "/experiment/models", "/experiment/models/{folder}",
    "/i18n", "/workflow_templates", "/global_subgraphs", "/global_subgraphs/{id}",
})
YIELDING_PREFIXES = ("/vhs/",)


def route_yields(path: str) -> bool:
    """Whether opencomfy's route at ``path`` gives way to a pack's (see YIELDING_PATHS)."""
    if path.startswith("/api/"):
        path = path[len("/api"):]
    return path in YIELDING_PATHS or path.startswith(YIELDING_PREFIXES)


def add_custom_node_routes(app: "web.Application", server) -> None:
    """Add the packs' routes to the app, each at its path and under ``/api``, with
    ComfyUI's precedence.

    In ComfyUI the core routes come first in the route table, then the packs', then its
    managers'; at one path and method the first answers. So here a pack's route where
    opencomfy's yields (:func:`route_yields`) is added now, before opencomfy's routes; every
    other one when the app starts, after them: a pack's route at a core path and method
    (``GET /object_info``) is logged and left out, the core route answers. A route that
    cannot be added is logged and skipped. Also keeps ``PromptServer.instance.loop`` current.
    """
    from aiohttp import web

    early = [r for r in server.routes if isinstance(r, web.RouteDef) and route_yields(r.path)]
    for route in early:
        _add_route(app, route)
        log.info("custom node route %s (%s) answers instead of opencomfy's, as in ComfyUI",
                 _describe(route), _owner(route))

    async def add_routes_and_remember_loop(app: web.Application) -> None:
        server.loop = asyncio.get_running_loop()
        taken = {(r.method, r.resource.canonical) for r in app.router.routes()
                 if r.resource is not None}
        for route in server.routes:
            if any(route is e for e in early):
                continue
            if isinstance(route, web.RouteDef) and _clashes(route, taken):
                log.warning("custom node route %s (%s) ignored: opencomfy's own route answers "
                            "there, as ComfyUI's core route would", _describe(route),
                            _owner(route))
                continue
            _add_route(app, route)

    app.on_startup.append(add_routes_and_remember_loop)


def _clashes(route, taken: set) -> bool:
    path = route.path[len("/api"):] if route.path.startswith("/api/") else route.path
    methods = {route.method, "*"} if route.method != "*" else {m for m, _ in taken}
    return any((method, p) in taken for method in methods for p in (path, "/api" + path))


def _add_route(app: "web.Application", route) -> None:
    from aiohttp import web

    try:
        if isinstance(route, web.StaticDef):
            app.router.add_static(route.prefix, route.path, **route.kwargs)
        elif isinstance(route, web.RouteDef):
            _add_api_route(app, route)
    except (RuntimeError, ValueError, TypeError) as exc:
        log.error("custom node route %s not added: %s", _describe(route), exc)


def _add_api_route(app: "web.Application", route) -> None:
    from aiohttp import web

    from opencomfy.http.routing import add_api_routes

    # One route at a time, so a bad route skips only itself.
    table = web.RouteTableDef()
    table.route(route.method, route.path, **route.kwargs)(route.handler)
    add_api_routes(app, table)


def _owner(route) -> str:
    handler = getattr(route, "handler", None)
    return getattr(handler, "__module__", None) or "unknown pack"


def _describe(route) -> str:
    return f"{getattr(route, 'method', 'STATIC')} {getattr(route, 'path', getattr(route, 'prefix', '?'))}"
