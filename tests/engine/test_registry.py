"""node_info / object_info in ComfyUI's NodeInfo shape."""

from __future__ import annotations

import json

from opencomfy.engine import NodeRegistry


class Minimal:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"x": ("INT", {"default": 1, "tooltip": "an int"})},
                "optional": {"y": ("FLOAT",)}, "hidden": {"uid": "UNIQUE_ID"}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "run"


class Full:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",)}}

    RETURN_TYPES = ("IMAGE", "MASK")
    RETURN_NAMES = ("picture", "alpha")
    OUTPUT_IS_LIST = (False, True)
    OUTPUT_TOOLTIPS = ("the picture", "its alpha")
    OUTPUT_NODE = True
    FUNCTION = "run"
    CATEGORY = "image/test"
    DESCRIPTION = "Does things."
    DEPRECATED = True
    EXPERIMENTAL = True
    API_NODE = False


def test_node_info_minimal_class():
    registry = NodeRegistry()
    registry.add("Minimal", Minimal)
    info = registry.node_info("Minimal")
    assert info == {
        "input": {"required": {"x": ("INT", {"default": 1, "tooltip": "an int"})}, "optional": {"y": ("FLOAT",)},
                  "hidden": {"uid": "UNIQUE_ID"}},
        "input_order": {"required": ["x"], "optional": ["y"], "hidden": ["uid"]},
        "output": ("INT",), "output_is_list": [False], "output_name": ("INT",), "name": "Minimal",
        "display_name": "Minimal", "description": "", "python_module": "nodes", "category": "sd",
        "output_node": False,
    }
    json.dumps(info)


def test_node_info_full_class_and_display_name():
    registry = NodeRegistry()
    version = registry.version
    registry.add("Full", Full, display_name="Full Node", python_module="custom_nodes.pack")
    assert registry.version > version
    info = registry.node_info("Full")
    assert info["display_name"] == "Full Node"
    assert info["python_module"] == "custom_nodes.pack"
    assert info["output_name"] == ("picture", "alpha")
    assert info["output_is_list"] == (False, True)
    assert info["output_tooltips"] == ("the picture", "its alpha")
    assert info["output_node"] is True and info["deprecated"] is True and info["experimental"] is True
    assert info["api_node"] is False
    assert info["category"] == "image/test" and info["description"] == "Does things."


def test_object_info_skips_broken_classes():
    class Broken:
        @classmethod
        def INPUT_TYPES(cls):
            raise RuntimeError("no")

        RETURN_TYPES = ()

    registry = NodeRegistry()
    registry.add("Minimal", Minimal)
    registry.add("Broken", Broken)
    assert list(registry.object_info()) == ["Minimal"]
    assert "Minimal" in registry and registry.get("Nope") is None


def test_relative_python_module_attribute():
    class Packed(Minimal):
        RELATIVE_PYTHON_MODULE = "custom_nodes.other"

    registry = NodeRegistry()
    registry.add("Packed", Packed)
    assert registry.node_info("Packed")["python_module"] == "custom_nodes.other"


def test_classes_that_describe_themselves_keep_their_info():
    class SelfDescribed(Minimal):
        @classmethod
        def GET_NODE_INFO_V1(cls):
            return {"name": "SelfDescribed", "display_name": "Described", "python_module": "comfy_extras.x",
                    "input": {}, "output": []}

    registry = NodeRegistry()
    registry.add("SelfDescribed", SelfDescribed)
    info = registry.node_info("SelfDescribed")
    assert info["display_name"] == "Described" and info["python_module"] == "comfy_extras.x"
    registry.add("SelfDescribed", SelfDescribed, display_name="Shown", python_module="custom_nodes.p")
    info = registry.node_info("SelfDescribed")
    assert info["display_name"] == "Shown" and info["python_module"] == "custom_nodes.p"


def test_get_input_info():
    from opencomfy.engine.node_spec import get_input_info

    assert get_input_info(Minimal, "x") == ("INT", "required", {"default": 1, "tooltip": "an int"})
    assert get_input_info(Minimal, "y") == ("FLOAT", "optional", {})
    assert get_input_info(Minimal, "uid") == ("UNIQUE_ID", "hidden", {})
    assert get_input_info(Minimal, "nope") == (None, None, None)
