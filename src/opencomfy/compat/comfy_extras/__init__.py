"""ComfyUI's ``comfy_extras`` package: ``comfy_extras.nodes_<x>`` modules that hold the core
node classes ComfyUI keeps there (``from comfy_extras.nodes_mask import ImageCompositeMasked``).

The modules are made on first import from the core registry: each holds the core classes
whose ``python_module`` names it.
"""

from __future__ import annotations

import types


def build_module(fullname: str) -> types.ModuleType | None:
    """A module with the core classes reported under ``fullname``; None if there are none."""
    from opencomfy.engine.registry import NodeRegistry
    from opencomfy.nodes import register_core_nodes

    registry = NodeRegistry()
    register_core_nodes(registry)
    classes = {name: registry.get(name) for name, module in registry.python_modules.items()
               if module == fullname}
    if not classes:
        return None
    module = types.ModuleType(fullname, f"Core node classes ComfyUI defines in {fullname}.")
    for name, cls in classes.items():
        setattr(module, name, cls)
    module.NODE_CLASS_MAPPINGS = dict(classes)
    # Helpers ComfyUI keeps beside the classes (``from comfy_extras.nodes_mask import composite``).
    from opencomfy.nodes.mask_extra import COMFY_EXTRAS_HELPERS
    for attribute, value in COMFY_EXTRAS_HELPERS.get(fullname, {}).items():
        setattr(module, attribute, value)
    return module
