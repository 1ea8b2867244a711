"""Primitive value nodes (ComfyUI ``comfy_extras/nodes_primitive.py``): a widget, passed on.

ComfyUI declares them with its V3 schema; see :mod:`opencomfy.nodes.v3_schema`.
"""

from __future__ import annotations

import sys

from opencomfy.nodes.v3_schema import V3SchemaNode, node_entries

PYTHON_MODULE = "comfy_extras.nodes_primitive"


class _Primitive(V3SchemaNode):
    CATEGORY = "utils/primitive"
    RELATIVE_PYTHON_MODULE = PYTHON_MODULE

    def execute(self, value):
        return (value,)


class PrimitiveString(_Primitive):
    """A single-line STRING."""

    NODE_ID = "PrimitiveString"
    DISPLAY_NAME = "String"
    RETURN_TYPES = ("STRING",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("STRING", {"multiline": False})}}


class PrimitiveStringMultiline(_Primitive):
    """A multi-line STRING."""

    NODE_ID = "PrimitiveStringMultiline"
    DISPLAY_NAME = "String (Multiline)"
    RETURN_TYPES = ("STRING",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("STRING", {"multiline": True})}}


class PrimitiveInt(_Primitive):
    """An INT (with the frontend's control-after-generate widget)."""

    NODE_ID = "PrimitiveInt"
    DISPLAY_NAME = "Int"
    RETURN_TYPES = ("INT",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"min": -sys.maxsize, "max": sys.maxsize,
                                               "control_after_generate": True})}}


class PrimitiveFloat(_Primitive):
    """A FLOAT."""

    NODE_ID = "PrimitiveFloat"
    DISPLAY_NAME = "Float"
    RETURN_TYPES = ("FLOAT",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("FLOAT", {"min": -sys.maxsize, "max": sys.maxsize})}}


class PrimitiveBoolean(_Primitive):
    """A BOOLEAN."""

    NODE_ID = "PrimitiveBoolean"
    DISPLAY_NAME = "Boolean"
    RETURN_TYPES = ("BOOLEAN",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("BOOLEAN", {})}}


NODES = node_entries([PrimitiveString, PrimitiveStringMultiline, PrimitiveInt, PrimitiveFloat,
                      PrimitiveBoolean], PYTHON_MODULE)
