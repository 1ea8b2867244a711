"""ComfyUI's ``comfy.k_diffusion``: the k-diffusion samplers (:mod:`.sampling`) and helpers
(:mod:`.utils`) over opencomfy's samplers. Its other submodules (``deis``, ``sa_solver`` ...)
are placeholders that fail by name when used."""

import importlib


def __getattr__(name: str):
    # `import comfy.k_diffusion` then `comfy.k_diffusion.sampling`, as for `comfy` itself.
    if name.startswith("_"):
        raise AttributeError(f"module 'comfy.k_diffusion' has no attribute {name!r}")
    try:
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"{__name__}.{name}":
            raise
    from opencomfy.compat import aliases, model_placeholders

    if aliases.installed() and model_placeholders.is_placeholder_name(f"comfy.k_diffusion.{name}"):
        return importlib.import_module(f"comfy.k_diffusion.{name}")
    raise AttributeError(f"module 'comfy.k_diffusion' has no attribute {name!r}")
