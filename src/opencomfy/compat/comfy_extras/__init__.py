"""ComfyUI's ``comfy_extras`` package: ``comfy_extras.nodes_<x>`` modules that hold the core
node classes ComfyUI keeps there (``from comfy_extras.nodes_mask import ImageCompositeMasked``).

The modules are made on first import from the core registry: each holds the core classes
whose ``python_module`` names it, the module-level helpers packs import beside them
(``nodes_mask.composite``, ``nodes_lt.get_noise_mask``), and, for the classes ComfyUI keeps
there that our core does not have yet (see :mod:`.catalogue`), placeholders that import
and subclass but fail when used. A module file of this package (``nodes_custom_sampler``)
wins over the generated one.
"""

from __future__ import annotations

import threading
import types
from typing import Any

_lock = threading.Lock()
_core = None


def _core_registry():
    """The core node registry, built once for every generated module."""
    global _core
    with _lock:
        if _core is None:
            from opencomfy.engine.registry import NodeRegistry
            from opencomfy.nodes import register_core_nodes

            registry = NodeRegistry()
            register_core_nodes(registry)
            _core = registry
    return _core


def module_helpers(fullname: str) -> dict:
    """Module-level functions and classes ComfyUI keeps in ``fullname`` beside the nodes."""
    from opencomfy.nodes.mask_extra import COMFY_EXTRAS_HELPERS

    helpers: dict[str, Any] = dict(COMFY_EXTRAS_HELPERS.get(fullname, {}))
    if fullname == "comfy_extras.nodes_lt":
        from opencomfy.compat.comfy_extras.lt_helpers import HELPERS

        helpers.update(HELPERS)
    if fullname == "comfy_extras.nodes_hunyuan3d":
        from opencomfy.nodes.files_3d import HUNYUAN_3D_HELPERS

        helpers.update(HUNYUAN_3D_HELPERS)
    if fullname == "comfy_extras.nodes_model_advanced":
        from opencomfy.compat.comfy import model_sampling

        helpers.update(LCM=model_sampling.LCM, X0=model_sampling.X0,
                       ModelSamplingDiscreteDistilled=model_sampling.ModelSamplingDiscreteDistilled)
    return helpers


def build_module(fullname: str) -> types.ModuleType | None:
    """The module ``fullname`` as ComfyUI has it; None if ComfyUI has no such module."""
    from opencomfy.compat.comfy_extras.catalogue import COMFY_EXTRAS_CLASSES
    from opencomfy.compat.model_placeholders import placeholder

    registry = _core_registry()
    classes = {name: registry.get(name) for name, module in registry.python_modules.items()
               if module == fullname}
    expected = COMFY_EXTRAS_CLASSES.get(fullname, ())
    if not classes and not expected:
        return None
    module = types.ModuleType(fullname, f"Core node classes ComfyUI defines in {fullname}.")
    for name in expected:
        if name not in classes and name.isidentifier():
            # ComfyUI has it here, our core does not (yet): importable, fails when used.
            setattr(module, name, placeholder(
                f"{fullname}.{name}", "opencomfy's core does not provide this node yet"))
    for name, cls in classes.items():
        setattr(module, name, cls)
    vars(module).update(
        NODE_CLASS_MAPPINGS=dict(classes),
        NODE_DISPLAY_NAME_MAPPINGS={name: registry.display_names[name] for name in classes
                                    if registry.display_names.get(name)})
    for attribute, value in module_helpers(fullname).items():
        setattr(module, attribute, value)
    return module
