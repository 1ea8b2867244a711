"""ComfyUI's Python modules, as custom nodes import them, built on opencomfy's engine.

Custom node packs do ``import folder_paths``, ``from server import PromptServer``,
``import comfy.utils``, ``from comfy_api.latest import io``. :func:`install` makes those
names resolve to the modules of this package (``opencomfy.compat.<name>``), so that
``comfy.utils`` and ``opencomfy.compat.comfy.utils`` are one and the same module object.

This package's ``__init__`` stays light: the core nodes import ``opencomfy.compat.folder_paths``
without wanting torch or aiohttp pulled in by the other shims.
"""

from __future__ import annotations

from opencomfy.compat.aliases import ALIASED_ROOTS, install, installed

__all__ = ["ALIASED_ROOTS", "install", "installed"]
