"""ComfyUI's ``comfy`` package, as far as custom nodes without a diffusion model need it.

``import comfy`` followed by ``comfy.utils...`` works as in ComfyUI (where something else
has usually imported the submodule already): submodules are imported on first access.
"""

import importlib

_OURS = ("utils", "model_management", "cli_args", "comfy_types", "samplers")


def __getattr__(name: str):
    if name in _OURS:
        return importlib.import_module(f"{__name__}.{name}")
    from opencomfy.compat import aliases, model_placeholders

    if aliases.installed() and model_placeholders.is_placeholder_name(f"comfy.{name}"):
        return importlib.import_module(f"comfy.{name}")
    raise AttributeError(f"module 'comfy' has no attribute {name!r}")
