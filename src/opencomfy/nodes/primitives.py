"""Primitive value nodes (ComfyUI ``comfy_extras/nodes_primitive.py``): a widget, passed on.

ComfyUI declares them as V3 nodes; these V1 declarations report the same ``/object_info``
(options dicts as V3 writes them, e.g. ``"multiline": False``, and a ``None`` output tooltip).
"""

from __future__ import annotations

import sys

PYTHON_MODULE = "comfy_extras.nodes_primitive"


class _Primitive:
    FUNCTION = "execute"
    CATEGORY = "utils/primitive"
    OUTPUT_TOOLTIPS = (None,)
    API_NODE = False
    DESCRIPTION = ""

    def execute(self, value):
        return (value,)


class PrimitiveString(_Primitive):
    """A single-line STRING."""

    RETURN_TYPES = ("STRING",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("STRING", {"multiline": False})}}


class PrimitiveStringMultiline(_Primitive):
    """A multi-line STRING."""

    RETURN_TYPES = ("STRING",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("STRING", {"multiline": True})}}


class PrimitiveInt(_Primitive):
    """An INT (with the frontend's control-after-generate widget)."""

    RETURN_TYPES = ("INT",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"min": -sys.maxsize, "max": sys.maxsize,
                                               "control_after_generate": True})}}


class PrimitiveFloat(_Primitive):
    """A FLOAT."""

    RETURN_TYPES = ("FLOAT",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("FLOAT", {"min": -sys.maxsize, "max": sys.maxsize,
                                                 "step": 0.1})}}


class PrimitiveBoolean(_Primitive):
    """A BOOLEAN."""

    RETURN_TYPES = ("BOOLEAN",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("BOOLEAN", {})}}


NODES = [
    ("PrimitiveString", PrimitiveString, "String", PYTHON_MODULE),
    ("PrimitiveStringMultiline", PrimitiveStringMultiline, "String (Multiline)", PYTHON_MODULE),
    ("PrimitiveInt", PrimitiveInt, "Int", PYTHON_MODULE),
    ("PrimitiveFloat", PrimitiveFloat, "Float", PYTHON_MODULE),
    ("PrimitiveBoolean", PrimitiveBoolean, "Boolean", PYTHON_MODULE),
]
