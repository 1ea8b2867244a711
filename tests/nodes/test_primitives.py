"""Primitive nodes pass their widget value on, declared as ComfyUI's V3 schema reports them."""

from __future__ import annotations

import sys

import pytest

from opencomfy.nodes import primitives
from opencomfy.nodes.primitives import (PrimitiveBoolean, PrimitiveFloat, PrimitiveInt,
                                        PrimitiveString, PrimitiveStringMultiline)


@pytest.mark.parametrize("cls,value", [
    (PrimitiveString, "a b"), (PrimitiveStringMultiline, "line 1\nline 2"),
    (PrimitiveInt, -(2 ** 40)), (PrimitiveFloat, 0.125), (PrimitiveBoolean, False),
])
def test_value_is_passed_on(cls, value):
    assert getattr(cls(), cls.FUNCTION)(value=value) == (value,)


def test_declarations_match_comfyui():
    declared = {name: (cls, display, module) for name, cls, display, module in primitives.NODES}
    assert {name: entry[1] for name, entry in declared.items()} == {
        "PrimitiveString": "String", "PrimitiveStringMultiline": "String (Multiline)",
        "PrimitiveInt": "Int", "PrimitiveFloat": "Float", "PrimitiveBoolean": "Boolean"}
    assert {entry[2] for entry in declared.values()} == {"comfy_extras.nodes_primitive"}
    assert PrimitiveString.INPUT_TYPES() == {"required": {"value": ("STRING",
                                                                    {"multiline": False})}}
    assert PrimitiveStringMultiline.INPUT_TYPES()["required"]["value"] == (
        "STRING", {"multiline": True})
    assert PrimitiveInt.INPUT_TYPES()["required"]["value"] == (
        "INT", {"min": -sys.maxsize, "max": sys.maxsize, "control_after_generate": True})
    assert PrimitiveFloat.INPUT_TYPES()["required"]["value"] == (
        "FLOAT", {"min": -sys.maxsize, "max": sys.maxsize})  # no step in ComfyUI
    assert PrimitiveBoolean.INPUT_TYPES()["required"]["value"] == ("BOOLEAN", {})
    for cls, _, _ in declared.values():
        assert cls.CATEGORY == "utils/primitive"
        assert cls.GET_NODE_INFO_V1()["output_tooltips"] == [None]
    assert PrimitiveInt.RETURN_TYPES == ("INT",) and PrimitiveBoolean.RETURN_TYPES == ("BOOLEAN",)
