"""torch.compile for a MODEL (the TorchCompileModel node).

The diffusion model is compiled once per patched MODEL (lazily: torch compiles on the first
call, for the shapes it sees) and swapped in only while that MODEL's model calls run, through
an APPLY_MODEL wrapper, as ComfyUI does: the shared model and every other MODEL value keep
running the plain module, and the weights stay shared (weight patches and LoRAs still apply,
the compiled module holds the same parameters). On the CPU, compiling takes a while (the
inductor backend builds C++ kernels), and the cudagraphs backend runs its graphs without CUDA
graphs (torch logs that it skips them).
"""

from __future__ import annotations

from collections.abc import Iterable

from opencomfy.diffusion import patcher_extension as ext
from opencomfy.diffusion.model_patcher import get_attr, set_attr

COMPILE_KEY = "torch_compile"
BACKENDS = ("inductor", "cudagraphs")


def compile_model(model, backend: str, *, mode: str | None = None, fullgraph: bool = False,
                  dynamic: bool | None = None, keys: Iterable[str] = ("diffusion_model",)):
    """A clone of ``model`` (a MODEL) whose ``keys`` (attributes of ``model.model``) run
    compiled with ``backend`` (any backend torch.compile knows, e.g. ``"eager"`` in tests)."""
    import torch

    known = set(torch._dynamo.list_backends(exclude_tags=())) | {"inductor"}
    if backend not in known:
        raise ValueError(f"unknown torch.compile backend {backend!r}; known: {sorted(known)}")
    compiled = {key: torch.compile(get_attr(model.model, key), backend=backend, mode=mode,
                                   fullgraph=fullgraph, dynamic=dynamic)
                for key in keys}

    def run_compiled(executor, *args, **kwargs):
        base = executor.class_obj
        replaced = {}
        try:
            for key, module in compiled.items():
                replaced[key] = set_attr(base, key, module)
            return executor(*args, **kwargs)
        finally:
            for key, original in replaced.items():
                set_attr(base, key, original)

    m = model.clone()
    m.remove_wrappers_with_key(ext.WrappersMP.APPLY_MODEL, COMPILE_KEY)   # compiling twice: the last wins
    m.add_wrapper_with_key(ext.WrappersMP.APPLY_MODEL, COMPILE_KEY, run_compiled)
    return m
