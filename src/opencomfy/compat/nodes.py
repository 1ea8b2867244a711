"""ComfyUI's ``nodes`` module: the node mappings, MAX_RESOLUTION, interrupts, core classes.

``NODE_CLASS_MAPPINGS`` and ``NODE_DISPLAY_NAME_MAPPINGS`` are live views of the registry
that ``build_registry`` bound, so a pack that reads them sees every loaded node, and a pack
that writes to them registers a node (never replacing a core one). Core classes are
re-exported by name (``nodes.SaveImage``), for packs that subclass them.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any, Iterator

MAX_RESOLUTION = 16384

# pack name -> web directory, and module name -> pack directory (filled by the loader).
EXTENSION_WEB_DIRS: dict[str, str] = {}
LOADED_MODULE_DIRS: dict[str, str] = {}

_registry = None
_core_names: frozenset[str] = frozenset()
_core_registry = None


def bind_registry(registry, core_names=None) -> None:
    """Make the mappings below reflect ``registry`` (called by ``build_registry``)."""
    global _registry, _core_names
    _registry = registry
    if core_names is not None:
        _core_names = frozenset(core_names)
    EXTENSION_WEB_DIRS.clear()
    LOADED_MODULE_DIRS.clear()


def bound_registry():
    return _registry


def core_node_names() -> frozenset[str]:
    return _core_names


def _classes() -> dict:
    return _registry.classes if _registry is not None else {}


class _NodeClassMappings(MutableMapping):
    """``{class_type: class}`` over the bound registry."""

    def __getitem__(self, key: str):
        return _classes()[key]

    def __setitem__(self, key: str, cls) -> None:
        if _registry is None:
            raise RuntimeError("no node registry is bound")
        if key in _core_names:
            return  # a pack cannot replace a core class (ComfyUI ignores it too)
        from opencomfy.compat.loader import register_node_class

        register_node_class(_registry, key, cls,
                            python_module=getattr(cls, "RELATIVE_PYTHON_MODULE", None) or "nodes")

    def __delitem__(self, key: str) -> None:
        raise TypeError("node classes cannot be removed from the registry")

    def __iter__(self) -> Iterator[str]:
        return iter(list(_classes()))

    def __len__(self) -> int:
        return len(_classes())

    def __contains__(self, key) -> bool:
        return key in _classes()

    def __repr__(self) -> str:
        return f"NODE_CLASS_MAPPINGS({len(self)} classes)"


class _DisplayNameMappings(MutableMapping):
    """``{class_type: display name}`` for the classes that have one."""

    def _names(self) -> dict[str, str]:
        if _registry is None:
            return {}
        return {name: display for name, display in _registry.display_names.items()
                if name in _registry.classes}

    def __getitem__(self, key: str) -> str:
        return self._names()[key]

    def __setitem__(self, key: str, value: str) -> None:
        if _registry is None or key in _core_names or key not in _registry.classes:
            return
        _registry.add(key, _registry.get(key), display_name=value,
                      python_module=_registry.python_modules.get(key, "nodes"))

    def __delitem__(self, key: str) -> None:
        raise TypeError("display names cannot be removed")

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())


NODE_CLASS_MAPPINGS: MutableMapping[str, Any] = _NodeClassMappings()
NODE_DISPLAY_NAME_MAPPINGS: MutableMapping[str, str] = _DisplayNameMappings()


def interrupt_processing(value: bool = True) -> None:
    """Ask the running prompt to stop (ComfyUI's POST /interrupt does this)."""
    from opencomfy.compat.comfy import model_management

    model_management.interrupt_current_processing(value)


def before_node_execution() -> None:
    """Raise ``InterruptProcessingException`` if the running prompt was interrupted."""
    from opencomfy.engine.progress import throw_if_interrupted

    throw_if_interrupted()


def _core_class(name: str):
    global _core_registry
    if _registry is not None and name in _core_names:
        return _registry.get(name)
    if _core_registry is None:
        from opencomfy.engine.registry import NodeRegistry
        from opencomfy.nodes import register_core_nodes

        _core_registry = NodeRegistry()
        register_core_nodes(_core_registry)
    return _core_registry.get(name)


def common_ksampler(model, seed, steps, cfg, sampler_name, scheduler, positive, negative, latent,
                    denoise=1.0, disable_noise=False, start_step=None, last_step=None,
                    force_full_denoise=False):
    """What KSampler and KSamplerAdvanced run (same result): ``(LATENT,)``, as in ComfyUI."""
    from opencomfy.nodes.diffusion_sampling import common_ksampler as run

    return (run(model, seed, steps, cfg, sampler_name, scheduler, positive, negative, latent,
                denoise=denoise, disable_noise=disable_noise, start_step=start_step,
                last_step=last_step, force_full_denoise=force_full_denoise),)


# ComfyUI's nodes.py classes that need a diffusion model: packs import them at
# the top, so they exist as placeholders that fail only when used (see model_placeholders).
_MODEL_NAMES = frozenset({
    "KSampler", "KSamplerAdvanced", "CheckpointLoaderSimple", "unCLIPCheckpointLoader",
    "LoraLoader", "VAELoader", "ControlNetLoader", "DiffControlNetLoader", "CLIPVisionLoader",
    "StyleModelLoader", "GLIGENLoader", "CheckpointLoader", "DiffusersLoader", "UNETLoader",
    "CLIPLoader", "DualCLIPLoader", "LoraLoaderModelOnly", "CLIPTextEncode", "CLIPSetLastLayer",
    "CLIPVisionEncode", "unCLIPConditioning", "ConditioningCombine", "ConditioningAverage",
    "ConditioningConcat", "ConditioningSetArea", "ConditioningSetAreaPercentage",
    "ConditioningSetAreaStrength", "ConditioningSetMask", "ConditioningZeroOut",
    "ConditioningSetTimestepRange", "ControlNetApply", "ControlNetApplyAdvanced",
    "StyleModelApply", "GLIGENTextBoxApply", "InpaintModelConditioning", "VAEDecode",
    "VAEEncode", "VAEEncodeForInpaint", "VAEDecodeTiled", "VAEEncodeTiled",
})


def __getattr__(name: str):
    # `nodes.SaveImage`, `from nodes import LoadImage`: ComfyUI's core classes by name.
    if name.startswith("__"):
        raise AttributeError(name)
    # Any name: core classes need not start with a capital (``unCLIPCheckpointLoader``).
    cls = _core_class(name)
    if cls is None and name in _MODEL_NAMES:
        from opencomfy.compat.model_placeholders import placeholder

        cls = placeholder(f"nodes.{name}")
    if cls is None:
        raise AttributeError(f"module 'nodes' has no attribute {name!r}")
    return cls
