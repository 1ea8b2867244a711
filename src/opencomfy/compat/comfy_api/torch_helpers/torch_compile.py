"""``set_torch_compile_wrapper``: run a MODEL's modules (``diffusion_model`` by default)
through ``torch.compile``.

The compiled modules are object patches of that MODEL (ModelPatcher), so they replace the
originals only while this MODEL runs, and clones made before the call are unaffected. Compiling
happens on the first call, with the given backend (``inductor`` needs a C compiler on the
machine; ``eager`` and ``aot_eager`` do not).
"""

from __future__ import annotations

import torch

COMPILE_KEY = "torch.compile"
TORCH_COMPILE_KWARGS = "torch_compile_kwargs"


def _get_attr(obj, path: str):
    for name in path.split("."):
        obj = getattr(obj, name)
    return obj


def set_torch_compile_wrapper(model, backend: str, options: dict | None = None, mode: str | None = None,
                              fullgraph: bool = False, dynamic: bool | None = None,
                              keys: list[str] | tuple[str, ...] = ("diffusion_model",), *args, **kwargs) -> None:
    """Compile ``keys`` (attribute paths of ``model.model``) for this MODEL."""
    if not hasattr(model, "add_object_patch") or not hasattr(model, "model"):
        raise TypeError(f"set_torch_compile_wrapper needs a MODEL (ModelPatcher), got {type(model).__name__}")
    compile_kwargs = {"backend": backend, "options": options, "mode": mode, "fullgraph": fullgraph,
                      "dynamic": dynamic}
    for key in keys:
        module = _get_attr(model.model, key)
        if not isinstance(module, torch.nn.Module):
            raise TypeError(f"set_torch_compile_wrapper: model.{key} is not a torch module")
        model.add_object_patch(key, torch.compile(module, **{k: v for k, v in compile_kwargs.items()
                                                             if v is not None}))
    if hasattr(model, "set_attachments"):
        model.set_attachments(TORCH_COMPILE_KWARGS, compile_kwargs)
