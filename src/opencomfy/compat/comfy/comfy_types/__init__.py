"""ComfyUI's ``comfy.comfy_types``: re-exports :mod:`.node_typing`."""

from opencomfy.compat.comfy.comfy_types.node_typing import (  # noqa: F401
    IO, CheckLazyMixin, ComfyNodeABC, FileLocator, InputTypeDict, InputTypeOptions,
)

__all__ = ["IO", "CheckLazyMixin", "ComfyNodeABC", "FileLocator", "InputTypeDict",
           "InputTypeOptions"]
