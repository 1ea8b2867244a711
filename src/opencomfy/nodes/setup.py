"""Assemble the node registry at start-up: folders, core nodes, compat modules, custom nodes.

`build_registry` is the one place that touches the process-wide state custom nodes depend on
(``folder_paths``, ``comfy.cli_args.args``, ``server.PromptServer.instance``), in this order:
folders first (core nodes list input files), then core nodes (so packs cannot replace them),
then the compat modules, then the packs, then the packs' HTTP routes.
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
    compat_nodes.bind_registry(registry, core_names)
    # Without an app (a worker process) packs still get one to add routes to, unused.
    server = PromptServer(app=app if app is not None else _detached_app())

    reports = []
    if config.disable_all_custom_nodes:
        log.info("custom nodes disabled (--disable-all-custom-nodes)")
    else:
        from opencomfy.compat import folder_paths
        from opencomfy.compat.loader import load_custom_nodes

        reports = load_custom_nodes(registry, folder_paths.get_folder_paths("custom_nodes"),
                                    core_names=core_names)
    # Not part of NodeRegistry's contract: kept for diagnostics (start-up log, tests).
    registry.custom_node_reports = reports

    if app is not None:
        add_custom_node_routes(app, server)
    return registry


def _detached_app() -> "web.Application":
    from aiohttp import web

    return web.Application()


def add_custom_node_routes(app: "web.Application", server) -> None:
    """Add the packs' routes to the app and keep ``PromptServer.instance.loop`` current.

    The routes are added when the app starts, after opencomfy's own routes (aiohttp's
    router stays open until the start-up hooks have run), so that on a clash the core route
    answers, as in ComfyUI. A route that cannot be added is logged and skipped.
    """
    from aiohttp import web

    async def add_routes_and_remember_loop(app: web.Application) -> None:
        server.loop = asyncio.get_running_loop()
        for route in server.routes:
            try:
                if isinstance(route, web.StaticDef):
                    app.router.add_static(route.prefix, route.path, **route.kwargs)
                elif isinstance(route, web.RouteDef):
                    _add_api_route(app, route)
            except (RuntimeError, ValueError, TypeError) as exc:
                log.error("custom node route %s not added: %s", _describe(route), exc)

    app.on_startup.append(add_routes_and_remember_loop)


def _add_api_route(app: "web.Application", route) -> None:
    from opencomfy.http.routing import add_api_routes

    # One route at a time (add_api_routes only iterates), so a bad route skips only itself.
    add_api_routes(app, [route])


def _describe(route) -> str:
    return f"{getattr(route, 'method', 'STATIC')} {getattr(route, 'path', getattr(route, 'prefix', '?'))}"
