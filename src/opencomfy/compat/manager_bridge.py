"""ComfyUI-Manager installed with pip (``comfyui-manager``), loaded as ComfyUI loads it.

ComfyUI does not find this package among its custom-node folders: with ``--enable-manager``
its ``main.py`` imports ``comfyui_manager`` and calls four hooks at fixed points of start-up,
which :func:`build_registry` mirrors:

1. ``prestartup()`` before the packs' own prestartup scripts;
2. ``should_be_disabled(path)`` for every pack folder (it refuses an old copy of itself);
3. ``create_middleware()``, added to the app's middlewares (after ours: auth runs first);
4. ``start()`` (unless ``--disable-manager-ui``), which registers its HTTP routes on
   ``PromptServer.instance.routes`` like any pack.

A manager that cannot be imported or whose hook fails is logged and left out; the server
starts without it. What the manager does over the network (fetching its node lists) is its
own business: offline, it logs the failure and keeps answering from its bundled lists.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from aiohttp import web

    from opencomfy.config import Config

log = logging.getLogger(__name__)

PACKAGE = "comfyui_manager"


class ManagerBridge:
    """The imported ``comfyui_manager`` module and the hooks ComfyUI calls on it."""

    def __init__(self, module: Any, config: "Config") -> None:
        self.module = module
        self.config = config

    @classmethod
    def load(cls, config: "Config") -> "ManagerBridge | None":
        """Import the package when ``--enable-manager`` asks for it (None otherwise)."""
        if not config.enable_manager:
            return None
        if importlib.util.find_spec(PACKAGE) is None:
            log.warning("--enable-manager: the comfyui-manager package is not installed "
                        "(pip install comfyui-manager); starting without it")
            return None
        try:
            import comfyui_manager  # type: ignore[import-not-found]
        except Exception:
            log.exception("--enable-manager: comfyui_manager could not be imported; "
                          "starting without it")
            return None
        return cls(comfyui_manager, config)

    def _call(self, name: str, *args) -> Any:
        hook = getattr(self.module, name, None)
        if hook is None:
            log.warning("comfyui_manager has no %s(); skipped", name)
            return None
        try:
            return hook(*args)
        except Exception:
            log.exception("comfyui_manager.%s() failed", name)
            return None

    def prestartup(self) -> None:
        # ComfyUI ships its custom_nodes folder; the manager lists and installs into it.
        from opencomfy.compat import folder_paths

        for folder in folder_paths.get_folder_paths("custom_nodes")[:1]:
            os.makedirs(folder, exist_ok=True)
        self._call("prestartup")

    def should_be_disabled(self) -> Callable[[str], bool]:
        """The predicate the loader asks about each pack folder."""
        return lambda path: bool(self._call("should_be_disabled", path))

    def start(self, app: "web.Application | None") -> None:
        """Add the middleware (when there is an app) and, unless the UI is off, the routes."""
        if app is not None:
            middleware = self._call("create_middleware")
            if middleware is not None:
                app.middlewares.append(middleware)
        if not self.config.disable_manager_ui:
            self._call("start")
