"""V3-schema core nodes whose /object_info view differs from what the engine runs against.

ComfyUI's newer nodes use dynamic sockets: an Autogrow group (``values.a``, ``values.b`` ...),
a MatchType socket (any type, the same on input and output) or a dropdown whose choice shows
further inputs (``resize_type.multiplier``). The frontend needs ComfyUI's description of them
(``COMFY_AUTOGROW_V3`` ...), while our engine validates and gathers the plain inputs that the
prompt will hold. :class:`V3DynamicNode` keeps the two apart: ``INPUT_TYPES`` is the engine's
view, ``object_info_inputs`` the catalogue's. It also reports the ``experimental`` flag,
``output_is_list`` and MatchType outputs, which :class:`V3SchemaNode` leaves at their defaults.
"""

from __future__ import annotations

from typing import Any

from opencomfy.compat.comfy.comfy_types.node_typing import IO
from opencomfy.nodes.v3_schema import V3SchemaNode

#: The engine's match-anything type (ComfyUI's plain "*" only matches another "*").
ANY = IO.ANY


def combo(options: list, **extra) -> tuple:
    """A V3 combo input: ``("COMBO", {"multiselect": False, "options": [...], ...})``."""
    return ("COMBO", {"multiselect": False, "options": list(options), **extra})


def autogrow_names(name: str, input_type: str, names: list[str], *, min_count: int,
                   optional_slot: bool = True) -> tuple:
    """ComfyUI's Autogrow description with named slots (``values.a`` ...)."""
    slot: dict[str, dict] = {"required": {}}
    slot.setdefault("optional" if optional_slot else "required", {})[name] = (input_type, {})
    template = {"input": slot, "names": list(names), "min": min_count}
    return ("COMFY_AUTOGROW_V3", {"template": template})


def autogrow_prefix(name: str, input_type: str, prefix: str, *, min_count: int,
                    max_count: int) -> tuple:
    """ComfyUI's Autogrow description with numbered slots (``images.image0`` ...)."""
    template = {"input": {"required": {name: (input_type, {})}},
                "prefix": prefix, "min": min_count, "max": max_count}
    return ("COMFY_AUTOGROW_V3", {"template": template})


def matchtype(template_id: str, **extra) -> tuple:
    """ComfyUI's MatchType socket accepting any type."""
    return ("COMFY_MATCHTYPE_V3", {"template": {"template_id": template_id, "allowed_types": "*"},
                                   **extra})


class V3DynamicNode(V3SchemaNode):
    """A V3-schema node with a separate catalogue view of its inputs (see the module doc)."""

    EXPERIMENTAL = False
    OUTPUT_IS_LIST: tuple = ()
    #: Catalogue output types where they differ from RETURN_TYPES (MatchType outputs).
    OBJECT_INFO_OUTPUTS: tuple | None = None
    OUTPUT_MATCHTYPES: list | None = None

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        raise NotImplementedError(f"{cls.__name__} declares no INPUT_TYPES")

    @classmethod
    def object_info_inputs(cls) -> dict:
        return cls.INPUT_TYPES()

    @classmethod
    def GET_NODE_INFO_V1(cls) -> dict[str, Any]:
        info = super().GET_NODE_INFO_V1()
        inputs = cls.object_info_inputs()
        info["input"] = inputs
        info["input_order"] = {section: list(names) for section, names in inputs.items()}
        if cls.OBJECT_INFO_OUTPUTS is not None:
            info["output"] = list(cls.OBJECT_INFO_OUTPUTS)
        if cls.OUTPUT_IS_LIST:
            info["output_is_list"] = list(cls.OUTPUT_IS_LIST)
        if cls.OUTPUT_MATCHTYPES is not None:
            info["output_matchtypes"] = list(cls.OUTPUT_MATCHTYPES)
        info["experimental"] = bool(cls.EXPERIMENTAL)
        return info
