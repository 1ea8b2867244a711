"""ComfyUI's ``comfy`` package, built on opencomfy's engine and libraries.

``import comfy`` followed by ``comfy.utils...`` works as in ComfyUI (where something else
has usually imported the submodule already): submodules are imported on first access, ours
first, then the placeholders of ComfyUI's model modules we do not implement.
"""

import importlib


def __getattr__(name: str):
    if name.startswith("_"):
        raise AttributeError(f"module 'comfy' has no attribute {name!r}")
    try:
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"{__name__}.{name}":
            raise
    from opencomfy.compat import aliases, model_placeholders

    if aliases.installed() and model_placeholders.is_placeholder_name(f"comfy.{name}"):
        return importlib.import_module(f"comfy.{name}")
    raise AttributeError(f"module 'comfy' has no attribute {name!r}")
