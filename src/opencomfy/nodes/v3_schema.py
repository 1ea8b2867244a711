"""Core nodes that ComfyUI declares with its V3 schema (``comfy_api`` ``io.Schema``).

We write them as V1 classes, but ``/object_info`` must read as ComfyUI's V3 nodes do: every
input has an options dict (String inputs say ``"multiline"``, combos are ``("COMBO",
{"multiselect": False, "options": [...]})``), and the node info always carries
``output_tooltips``, ``deprecated``, ``experimental`` and ``api_node``, with ``display_name``
null when the schema has none. Subclasses write ``INPUT_TYPES`` in that V3 form; this base
supplies the info (the registry calls ``GET_NODE_INFO_V1`` when a class has it).
"""

from __future__ import annotations

from typing import Any


class V3SchemaNode:
    """Base of the core nodes declared with ComfyUI's V3 schema."""

    NODE_ID: str = ""
    DISPLAY_NAME: str | None = None
    DESCRIPTION = ""
    CATEGORY = "sd"
    FUNCTION = "execute"
    OUTPUT_NODE = False
    API_NODE = False
    # Every subclass sets these, in the V3 form the module docstring describes.
    RETURN_TYPES: tuple[str, ...]

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:  # noqa: N802 (ComfyUI's name)
        raise NotImplementedError(f"{cls.__name__} must define INPUT_TYPES")

    @classmethod
    def output_tooltips(cls) -> list[None]:
        return [None] * len(cls.RETURN_TYPES)

    @classmethod
    def GET_NODE_INFO_V1(cls) -> dict[str, Any]:
        """The node info ComfyUI's ``Schema.get_v1_info`` produces for this node."""
        inputs = cls.INPUT_TYPES()
        return_types = list(cls.RETURN_TYPES)
        return {
            "input": inputs,
            "input_order": {section: list(names) for section, names in inputs.items()},
            "output": return_types,
            "output_is_list": [False] * len(return_types),
            "output_name": list(getattr(cls, "RETURN_NAMES", return_types)),
            "output_tooltips": cls.output_tooltips(),
            "name": cls.NODE_ID,
            "display_name": cls.DISPLAY_NAME,
            "description": cls.DESCRIPTION,
            "python_module": getattr(cls, "RELATIVE_PYTHON_MODULE", "nodes"),
            "category": cls.CATEGORY,
            "output_node": bool(cls.OUTPUT_NODE),
            "deprecated": False,
            "experimental": False,
            "api_node": False,
        }


def node_entries(classes, python_module: str) -> list[tuple]:
    """``NODES`` entries for V3-schema classes: their id, display name (or None) and module."""
    return [(cls.NODE_ID, cls, cls.DISPLAY_NAME, python_module) for cls in classes]
