"""Alias ComfyUI's top-level module names onto ``opencomfy.compat.*`` in ``sys.modules``.

A meta-path finder placed first in ``sys.meta_path`` answers every import of an aliased
name (``comfy``, ``comfy.utils``, ``comfy.comfy_types.node_typing`` ...) with our module of
the same dotted path under ``opencomfy.compat``. Importing through the alias never executes
a module a second time: the alias and the real name share one module object, whichever is
imported first.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import threading
from types import ModuleType

# The names ComfyUI custom nodes import, each served by ``opencomfy.compat.<name>``.
ALIASED_ROOTS: tuple[str, ...] = (
    "nodes", "folder_paths", "server", "node_helpers", "latent_preview", "execution",
    "comfy", "comfy_execution", "comfy_api", "comfy_extras",
)

# Imported eagerly by install(), so that `sys.modules` already holds the common ones.
_EAGER = (
    "folder_paths", "nodes", "server", "node_helpers", "latent_preview",
    "comfy", "comfy.utils", "comfy.model_management", "comfy.cli_args",
    "comfy.comfy_types", "comfy.comfy_types.node_typing",
    "comfy_execution", "comfy_execution.graph", "comfy_execution.graph_utils",
    "comfy_execution.utils", "comfy_execution.progress",
    "comfy_api", "comfy_api.latest", "comfy_api.v0_0_2", "comfy_api.v0_0_1",
)

_PREFIX = "opencomfy.compat."
_lock = threading.Lock()
_installed = False


def _is_aliased(fullname: str) -> bool:
    root = fullname.partition(".")[0]
    return root in ALIASED_ROOTS


class _ExistingModuleLoader(importlib.abc.Loader):
    """Hands the import system a module that is already loaded under its real name."""

    def __init__(self, module: ModuleType) -> None:
        self._module = module

    def create_module(self, spec):
        return self._module

    def exec_module(self, module) -> None:
        # Already executed under its real name; running it again would fork its state.
        pass


class CompatFinder(importlib.abc.MetaPathFinder):
    """Resolves ``comfy.x`` to ``opencomfy.compat.comfy.x`` (one module, two names)."""

    def find_spec(self, fullname, path=None, target=None):
        if not _is_aliased(fullname):
            return None
        real_name = _PREFIX + fullname
        try:
            module = importlib.import_module(real_name)
        except ModuleNotFoundError as exc:
            if exc.name == real_name or real_name.startswith((exc.name or "") + "."):
                module = _synthetic_module(fullname, real_name)
                if module is None:
                    return None  # we do not provide it: let the import fail normally
            else:
                raise
        is_package = hasattr(module, "__path__")
        spec = importlib.machinery.ModuleSpec(
            fullname, _ExistingModuleLoader(module), is_package=is_package)
        if is_package:
            spec.submodule_search_locations = list(module.__path__)
        return spec


def _synthetic_module(fullname: str, real_name: str) -> ModuleType | None:
    """Modules made on demand: ``comfy_extras.nodes_*`` from the core registry (see
    opencomfy.compat.comfy_extras), and placeholders for ComfyUI's model modules."""
    from opencomfy.compat import model_placeholders

    if model_placeholders.is_placeholder_name(fullname):
        module = model_placeholders.make_module(fullname)
        sys.modules[real_name] = module
        return module
    if not fullname.startswith("comfy_extras.nodes_") or fullname.count(".") != 1:
        return None
    from opencomfy.compat.comfy_extras import build_module

    module = build_module(fullname)
    if module is not None:
        sys.modules[real_name] = module
    return module


_finder = CompatFinder()


def install() -> None:
    """Make ComfyUI's module names importable. Idempotent and thread-safe."""
    global _installed
    with _lock:
        if _installed:
            return
        if _finder not in sys.meta_path:
            sys.meta_path.insert(0, _finder)
        _installed = True
    for name in _EAGER:
        importlib.import_module(name)


def installed() -> bool:
    """Whether :func:`install` has run in this process."""
    return _installed
