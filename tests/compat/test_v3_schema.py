"""V3 nodes: object_info exactly as ComfyUI reports them, and the V1 facade the engine runs."""

from __future__ import annotations

import inspect
import json

import pytest
import torch


def _json(value):
    return json.loads(json.dumps(value))


def test_object_info_of_a_v3_node_has_comfyuis_shape(loaded):
    info = _json(loaded.registry.node_info("V3Multiply"))
    assert info == {
        "input": {
            "required": {
                "value": ["FLOAT", {"tooltip": "the float", "default": 1.5, "min": -10.0,
                                    "max": 10.0, "step": 0.5}],
                "factor": ["INT", {"default": 2, "min": 1, "max": 10, "display": "slider"}],
                "mode": ["COMBO", {"default": "mul", "multiselect": False,
                                   "options": ["mul", "add"]}],
            },
            "optional": {"label": ["STRING", {"default": "", "multiline": True}]},
            "hidden": {"unique_id": ["UNIQUE_ID"]},
        },
        "input_order": {"required": ["value", "factor", "mode"], "optional": ["label"],
                        "hidden": ["unique_id"]},
        "output": ["FLOAT", "STRING"],
        "output_is_list": [False, False],
        "output_name": ["result", "STRING"],
        "output_tooltips": ["the product", None],
        "output_matchtypes": None,
        "name": "V3Multiply",
        "display_name": "Multiply (V3)",
        "description": "Multiplies or adds a float and an int.",
        "python_module": "custom_nodes.v3_pack",
        "category": "v3pack/math",
        "output_node": False,
        "deprecated": False,
        "experimental": False,
        "api_node": False,
    }


def test_output_nodes_get_prompt_and_extra_pnginfo_hidden_inputs(loaded):
    info = _json(loaded.registry.node_info("V3PreviewImage"))
    assert info["input"]["hidden"] == {"prompt": ["PROMPT"], "extra_pnginfo": ["EXTRA_PNGINFO"]}
    assert info["output_node"] is True and info["output"] == []
    info = _json(loaded.registry.node_info("V3LazySwitch"))
    assert info["input"]["optional"]["on_true"] == ["*", {"lazy": True}]
    assert info["input"]["required"]["switch"] == ["BOOLEAN", {"default": True}]


def test_outputs_without_display_name_are_named_by_type(loaded):
    info = loaded.registry.node_info("V3Invert")
    assert info["output"] == ["IMAGE", "MASK"]
    assert info["output_name"] == ["IMAGE", "luma"]
    assert info["display_name"] is None  # ComfyUI reports null when the schema has none


def test_facade_speaks_the_v1_protocol(loaded):
    facade = loaded.registry.get("V3Multiply")
    assert facade.RETURN_TYPES == ("FLOAT", "STRING")
    assert facade.RETURN_NAMES == ("result", "STRING")
    assert facade.OUTPUT_IS_LIST == (False, False)
    assert facade.CATEGORY == "v3pack/math"
    assert facade.OUTPUT_NODE is False and facade.INPUT_IS_LIST is False
    assert facade.FUNCTION == "EXECUTE_V3"
    assert loaded.registry.get("V3AsyncSleep").FUNCTION == "EXECUTE_V3_ASYNC"
    inputs = facade.INPUT_TYPES()
    # Dropdowns as ComfyUI declares them, hidden inputs under names no input can take.
    assert inputs["required"]["mode"] == ("COMBO", {"default": "mul", "multiselect": False,
                                                    "options": ["mul", "add"]})
    assert inputs["required"]["factor"] == ("INT", {"default": 2, "min": 1, "max": 10,
                                                    "display": "slider"})
    assert inputs["hidden"] == {"__v3_hidden__unique_id": "UNIQUE_ID"}


def test_hooks_exist_only_when_the_v3_class_defines_them(loaded):
    multiply = loaded.registry.get("V3Multiply")
    switch = loaded.registry.get("V3LazySwitch")
    assert hasattr(multiply, "VALIDATE_INPUTS") and hasattr(multiply, "IS_CHANGED")
    assert not hasattr(switch, "VALIDATE_INPUTS") and not hasattr(switch, "IS_CHANGED")
    assert "check_lazy_status" in switch.__dict__ and "check_lazy_status" not in multiply.__dict__
    # The engine passes VALIDATE_INPUTS only what its signature names.
    assert list(inspect.signature(multiply.VALIDATE_INPUTS).parameters) == ["factor"]
    assert multiply.VALIDATE_INPUTS(factor=7) == "seven is not allowed"
    assert multiply.VALIDATE_INPUTS(factor=3) is True
    assert multiply.IS_CHANGED(value=1.0, factor=2, mode="mul") == "1.0-2-mul"
    assert switch().check_lazy_status(switch=False, on_true=None, on_false=None) == ["on_false"]


def test_execution_runs_on_a_clone_with_hidden_inputs(loaded):
    facade = loaded.registry.get("V3Multiply")
    out = facade().EXECUTE_V3(value=1.5, factor=4, mode="mul", __v3_hidden__unique_id="12")
    assert out == {"result": (6.0, "6.0 from node 12"), "ui": {"text": ("6.0 from node 12",)}}
    assert facade.V3_CLASS.hidden is None  # nothing leaked onto the class


def test_execution_results_translate_to_v1_conventions(loaded):
    from comfy_execution.graph import ExecutionBlocker

    gate = loaded.registry.get("V3Gate")
    image = torch.zeros(1, 2, 2, 3)
    assert gate().EXECUTE_V3(image=image, open=True)[0] is image
    blocked = gate().EXECUTE_V3(image=image, open=False)
    assert isinstance(blocked[0], ExecutionBlocker) and blocked[0].message == "gate closed"
    inverted, luma = loaded.registry.get("V3Invert")().EXECUTE_V3(image=image)
    assert torch.equal(inverted, torch.ones(1, 2, 2, 3)) and luma.shape == (1, 2, 2)


def test_expand_requires_enable_expand():
    from comfy_api.latest import io
    from opencomfy.compat.v3_facade import make_v1_facade

    class Expander(io.ComfyNode):
        @classmethod
        def define_schema(cls):
            return io.Schema(node_id="Expander", outputs=[io.Int.Output()])

        @classmethod
        def execute(cls):
            return io.NodeOutput(1, expand={"a": {"class_type": "X", "inputs": {}}})

    with pytest.raises(RuntimeError, match="enable_expand"):
        make_v1_facade(Expander)().EXECUTE_V3()

    class GoodExpander(Expander):
        @classmethod
        def define_schema(cls):
            return io.Schema(node_id="GoodExpander", outputs=[io.Int.Output()], enable_expand=True)

    result = make_v1_facade(GoodExpander)().EXECUTE_V3()
    assert result == {"result": (1,), "expand": {"a": {"class_type": "X", "inputs": {}}}}


def test_schema_validation_rejects_duplicate_ids():
    from comfy_api.latest import io

    class Dup(io.ComfyNode):
        @classmethod
        def define_schema(cls):
            return io.Schema(node_id="Dup", inputs=[io.Int.Input("x"), io.Int.Input("x")],
                             outputs=[io.Int.Output(id="x")])

        @classmethod
        def execute(cls, x):
            return io.NodeOutput(x)

    with pytest.raises(ValueError, match="Input ids must be unique"):
        Dup.GET_SCHEMA()


def test_a_class_without_execute_is_rejected():
    from comfy_api.latest import io

    class NoExecute(io.ComfyNode):
        @classmethod
        def define_schema(cls):
            return io.Schema(node_id="NoExecute")

    with pytest.raises(TypeError, match="No execute function"):
        NoExecute.GET_SCHEMA()


def test_v1_view_on_the_v3_class_itself():
    from comfy_api.latest import io

    class Plain(io.ComfyNode):
        @classmethod
        def define_schema(cls):
            return io.Schema(node_id="Plain", category="x", inputs=[io.Image.Input("image")],
                             outputs=[io.Image.Output(is_output_list=True)])

        @classmethod
        def execute(cls, image):
            return io.NodeOutput([image])

    assert Plain.RETURN_TYPES == ["IMAGE"] and Plain.OUTPUT_IS_LIST == [True]
    assert Plain.CATEGORY == "x"
    assert Plain.INPUT_TYPES() == {"required": {"image": ("IMAGE", {})}}


def test_custom_and_multitype_sockets():
    from comfy_api.latest import io

    assert io.Custom("MY_THING").Input("x").get_io_type() == "MY_THING"
    assert io.Custom("MY_THING").Output().io_type == "MY_THING"
    multi = io.MultiType.Input("x", types=[io.Image, io.Mask])
    assert multi.get_io_type() == "IMAGE,MASK"
    widget = io.MultiType.Input(io.Float.Input("f", default=1.0), types=[io.Int])
    assert widget.get_io_type() == "FLOAT,INT"
    assert widget.as_dict()["default"] == 1.0
    # Each type has its own Input class (setting Parent on one never leaks to another).
    assert io.Image.Input.Parent is io.Image and io.Mask.Input.Parent is io.Mask


def test_combo_accepts_an_enum():
    import enum

    from comfy_api.latest import io

    class Mode(enum.Enum):
        a = "alpha"
        b = "beta"

    combo = io.Combo.Input("mode", options=Mode, default=Mode.b)
    assert combo.options == ["alpha", "beta"] and combo.default == "beta"


def test_options_of_newer_comfyui_versions_are_accepted():
    from comfy_api.latest import io

    class Newer(io.ComfyNode):
        @classmethod
        def define_schema(cls):
            return io.Schema(node_id="Newer", search_aliases=["new"], essentials_category="x",
                             inputs=[io.Int.Input("n", default=1, advanced=True, some_future_flag=1),
                                     io.String.Input("s", multiline=False, future=True)],
                             outputs=[io.Int.Output()])

        @classmethod
        def execute(cls, n, s):
            return io.NodeOutput(n)

    info = Newer.GET_NODE_INFO_V1()
    assert info["input"]["required"]["n"] == ("INT", {"advanced": True, "default": 1})
    assert info["input"]["required"]["s"] == ("STRING", {"multiline": False})
    assert "search_aliases" not in info


async def test_multiselect_combo_runs_with_a_list_value():
    from comfy_api.latest import io

    from opencomfy.compat.loader import register_node_class
    from opencomfy.engine import Engine, NodeRegistry

    class Pick(io.ComfyNode):
        @classmethod
        def define_schema(cls):
            return io.Schema(node_id="Pick", is_output_node=True,
                             inputs=[io.MultiCombo.Input("tags", options=["a", "b", "c"])])

        @classmethod
        def execute(cls, tags):
            return io.NodeOutput(ui={"tags": list(tags)})

    registry = NodeRegistry()
    register_node_class(registry, "Pick", Pick, python_module="custom_nodes.test")
    assert registry.node_info("Pick")["input"]["required"]["tags"][1]["multi_select"] is True
    engine = Engine(registry)
    prompt = {"1": {"class_type": "Pick", "inputs": {"tags": {"__value__": ["a", "c"]}}}}
    validation = await engine.validate(prompt)
    assert validation.ok, validation.node_errors
    result = await engine.run(prompt, prompt_id="p", execute_outputs=validation.outputs)
    assert result.outputs["1"] == {"tags": ["a", "c"]}


async def test_dynamic_combo_describes_its_options_and_nests_the_chosen_inputs():
    from comfy_api.latest import io

    from opencomfy.compat.loader import register_node_class
    from opencomfy.engine import Engine, NodeRegistry

    class Shape(io.ComfyNode):
        @classmethod
        def define_schema(cls):
            return io.Schema(
                node_id="Shape", is_output_node=True,
                inputs=[io.DynamicCombo.Input("shape", options=[
                    io.DynamicCombo.Option("square", [io.Int.Input("side", default=2, min=1)]),
                    io.DynamicCombo.Option("rect", [io.Int.Input("side", default=2, min=1),
                                                    io.Int.Input("height", default=3)]),
                ])])

        @classmethod
        def execute(cls, shape):
            area = shape["side"] * shape.get("height", shape["side"])
            return io.NodeOutput(ui={"shape": [shape["shape"]], "area": [area]})

    registry = NodeRegistry()
    register_node_class(registry, "Shape", Shape, python_module="custom_nodes.test")
    info = registry.node_info("Shape")["input"]["required"]["shape"]
    assert info[0] == "COMFY_DYNAMICCOMBO_V3"
    assert [o["key"] for o in info[1]["options"]] == ["square", "rect"]
    assert info[1]["options"][1]["inputs"]["required"]["height"] == ("INT", {"default": 3})
    engine = Engine(registry)
    prompt = {"1": {"class_type": "Shape",
                    "inputs": {"shape": "rect", "shape.side": 4, "shape.height": 5}}}
    validation = await engine.validate(prompt)
    assert validation.ok, validation.node_errors
    result = await engine.run(prompt, prompt_id="p", execute_outputs=validation.outputs)
    assert result.outputs["1"] == {"shape": ["rect"], "area": [20]}
    prompt["1"]["inputs"] = {"shape": "square", "shape.side": 3, "shape.height": 5}
    result = await engine.run(prompt, prompt_id="p2", execute_outputs=["1"])
    assert result.outputs["1"] == {"shape": ["square"], "area": [9]}  # height is not square's
    prompt["1"]["inputs"]["shape"] = "circle"
    validation = await engine.validate(prompt)
    assert validation.node_errors["1"]["errors"][0]["type"] == "value_not_in_list"
