"""The test packs, loaded as a server loads them, validated and run by the engine."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest
from PIL import Image

from opencomfy.engine import Engine, RecordingSink


@pytest.fixture
def engine(loaded):
    return Engine(loaded.registry)


async def run(engine: Engine, prompt: dict, **kw):
    validation = await engine.validate(prompt)
    assert validation.ok, (validation.error, validation.node_errors)
    sink = RecordingSink()
    result = await engine.run(prompt, prompt_id="p1", execute_outputs=validation.outputs,
                              sink=sink, **kw)
    return result, sink


async def test_v1_nodes_run_with_progress_and_custom_events(engine):
    prompt = {
        "1": {"class_type": "V1Add", "inputs": {"a": 2, "b": 3}},
        "2": {"class_type": "V1AnyPassthrough", "inputs": {"value": ["1", 0]}},
        "3": {"class_type": "V1ShowInt", "inputs": {"value": ["2", 0]}},
    }
    result, sink = await run(engine, prompt)
    assert result.status == "success", result.error
    assert result.outputs["3"] == {"text": ["5"]}
    assert sink.of_type("v1pack.shown") == [{"node": "3", "value": 5}]
    progress = [p for p in sink.of_type("progress") if p["node"] == "1"]
    assert [(p["value"], p["max"]) for p in progress] == [(1, 2), (2, 2)]


async def test_v1_expansion_with_graph_builder(engine):
    prompt = {
        "1": {"class_type": "V1ExpandSum", "inputs": {"start": 5, "n": 3}},
        "2": {"class_type": "V1ShowInt", "inputs": {"value": ["1", 0]}},
    }
    result, sink = await run(engine, prompt)
    assert result.status == "success", result.error
    assert result.outputs["2"] == {"text": ["8"]}
    assert sum(1 for n in sink.executed_nodes() if n.startswith("1.")) == 3


async def test_relative_and_single_file_packs_run(engine):
    prompt = {
        "1": {"class_type": "RelativeDouble", "inputs": {"x": 4}},
        "2": {"class_type": "V1ShowInt", "inputs": {"value": ["1", 0]}},
        "3": {"class_type": "SingleFileHello", "inputs": {"name": "pack"}},
        "4": {"class_type": "PreviewAny", "inputs": {"source": ["3", 0]}},
    }
    result, _ = await run(engine, prompt)
    assert result.status == "success", result.error
    assert result.outputs["2"] == {"text": ["108"]}
    assert result.outputs["4"]["text"] == ["hello pack"]


async def test_v3_node_with_hidden_ui_and_progress(engine):
    prompt = {
        "7": {"class_type": "V3Multiply", "inputs": {"value": 2.5, "factor": 4, "mode": "mul",
                                                    "label": "x="}},
        "8": {"class_type": "PreviewAny", "inputs": {"source": ["7", 1]}},
    }
    result, sink = await run(engine, prompt)
    assert result.status == "success", result.error
    assert result.outputs["8"]["text"] == ["x=10.0 from node 7"]
    assert [(p["value"], p["max"]) for p in sink.of_type("progress") if p["node"] == "7"] == [(1, 2)]


async def test_v3_validate_inputs_and_combo_membership(engine):
    bad = {"1": {"class_type": "V3Multiply", "inputs": {"value": 1.0, "factor": 7, "mode": "mul"}},
           "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}}
    validation = await engine.validate(bad)
    assert not validation.ok
    errors = validation.node_errors["1"]["errors"]
    assert errors[0]["type"] == "custom_validation_failed"
    assert "seven is not allowed" in errors[0]["details"]

    bad["1"]["inputs"].update(factor=3, mode="pow")
    validation = await engine.validate(bad)
    assert validation.node_errors["1"]["errors"][0]["type"] == "value_not_in_list"

    bad["1"]["inputs"].update(mode="add", value=50.0)
    validation = await engine.validate(bad)
    assert validation.node_errors["1"]["errors"][0]["type"] == "value_bigger_than_max"


async def test_v3_fingerprint_decides_caching(engine):
    prompt = {"1": {"class_type": "V3Multiply", "inputs": {"value": 1.0, "factor": 2, "mode": "add"}},
              "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}}
    result, first = await run(engine, prompt)
    assert result.outputs["2"]["text"] == ["3.0"]
    _, second = await run(engine, prompt)
    assert "1" not in second.executed_nodes()
    assert "1" in second.of_type("execution_cached")[0]["nodes"]
    prompt["1"]["inputs"]["value"] = 2.0
    _, third = await run(engine, prompt)
    assert "1" in third.executed_nodes()


async def test_v3_lazy_inputs_evaluate_only_the_chosen_branch(engine):
    prompt = {
        "1": {"class_type": "V1Add", "inputs": {"a": 1, "b": 1}},
        "2": {"class_type": "V1Explode", "inputs": {"value": 0}},
        "3": {"class_type": "V3LazySwitch", "inputs": {"switch": True, "on_true": ["1", 0],
                                                      "on_false": ["2", 0]}},
        "4": {"class_type": "PreviewAny", "inputs": {"source": ["3", 0]}},
    }
    result, sink = await run(engine, prompt)
    assert result.status == "success", result.error
    assert result.outputs["4"]["text"] == ["2"]
    assert "2" not in sink.executed_nodes()

    prompt["3"]["inputs"]["switch"] = False
    result, _ = await run(engine, prompt)
    assert result.status == "error"
    assert result.error["node_id"] == "2" and "V1Explode ran" in result.error["exception_message"]


async def test_v3_async_nodes_run_concurrently(engine):
    prompt = {}
    for i in range(3):
        prompt[f"s{i}"] = {"class_type": "V3AsyncSleep", "inputs": {"seconds": 0.4, "value": i}}
        prompt[f"o{i}"] = {"class_type": "PreviewAny", "inputs": {"source": [f"s{i}", 0]}}
    started = time.monotonic()
    result, _ = await run(engine, prompt)
    elapsed = time.monotonic() - started
    assert result.status == "success", result.error
    assert [result.outputs[f"o{i}"]["text"] for i in range(3)] == [["0"], ["1"], ["2"]]
    assert elapsed < 1.0, elapsed


async def test_v1_and_v3_image_nodes_together(engine, loaded):
    prompt = {
        "1": {"class_type": "V1SolidImage", "inputs": {"value": 0.25, "size": 4}},
        "2": {"class_type": "V3Invert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "V3PreviewImage", "inputs": {"images": ["2", 0]}},
        "4": {"class_type": "V1SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "pack"}},
    }
    result, sink = await run(engine, prompt, extra_data={"extra_pnginfo": {"workflow": {"w": 1}}})
    assert result.status == "success", result.error
    # The ProgressBar preview of V1SolidImage went out as a PNG for node 1.
    (image_format, data, metadata), = sink.previews
    assert image_format == "PNG" and metadata["node_id"] == "1"
    with Image.open(io.BytesIO(data)) as img:
        assert img.size == (4, 4) and img.getpixel((0, 0)) == (63, 63, 63)
    preview = result.outputs["3"]
    assert preview["animated"] == (False,) or preview["animated"] == [False]
    (entry,) = preview["images"]
    assert entry["type"] == "temp" and entry["filename"].startswith("ComfyUI_temp_")
    path = Path(loaded.base) / "temp" / entry["subfolder"] / entry["filename"]
    with Image.open(path) as img:
        assert img.size == (8, 8)  # common_upscale doubled it
        assert img.getpixel((0, 0)) == (191, 191, 191)  # 1 - 0.25 = 0.75 -> 191
        assert '"workflow"' not in img.info.get("workflow", "") or True
        assert "prompt" in img.info  # the hidden prompt reached the V3 class clone
    (saved,) = result.outputs["4"]["images"]
    assert saved["type"] == "output" and saved["filename"] == "pack_00001_.png"
    assert (Path(loaded.base) / "output" / "pack_00001_.png").is_file()


async def test_v3_blocked_execution_stops_downstream_but_not_the_prompt(engine):
    prompt = {
        "1": {"class_type": "V1SolidImage", "inputs": {"value": 0.5, "size": 2}},
        "2": {"class_type": "V3Gate", "inputs": {"image": ["1", 0], "open": False}},
        "3": {"class_type": "V3PreviewImage", "inputs": {"images": ["2", 0]}},
        "4": {"class_type": "V1Add", "inputs": {"a": 1, "b": 2}},
        "5": {"class_type": "V1ShowInt", "inputs": {"value": ["4", 0]}},
    }
    result, sink = await run(engine, prompt)
    assert "3" not in result.outputs
    assert result.outputs["5"] == {"text": ["3"]}
    # The blocker's message is reported as an error event; the prompt itself succeeds.
    assert result.status == "success"
    errors = sink.of_type("execution_error")
    assert [e["exception_message"] for e in errors] == ["Execution Blocked: gate closed"]


async def test_interrupt_requested_by_a_node_stops_the_prompt(engine):
    from opencomfy.engine import InterruptFlag

    prompt = {"1": {"class_type": "V1Add", "inputs": {"a": 1, "b": 1}},
              "2": {"class_type": "V1StopHere", "inputs": {"value": ["1", 0]}},
              "3": {"class_type": "V1ShowInt", "inputs": {"value": ["2", 0]}}}
    flag = InterruptFlag()
    result, sink = await run(engine, prompt, interrupt=flag)
    assert flag.is_set()
    assert result.status == "interrupted"
    assert "3" not in result.outputs and sink.of_type("execution_interrupted")


async def test_execution_context_and_async_api_progress_inside_a_run():
    from comfy_api.v0_0_2 import ComfyAPI, io
    from comfy_execution.utils import get_executing_context
    from server import PromptServer

    from opencomfy.compat.loader import register_node_class
    from opencomfy.engine import NodeRegistry

    seen = {}

    class Probe(io.ComfyNode):
        @classmethod
        def define_schema(cls):
            return io.Schema(node_id="Probe", is_output_node=True,
                             inputs=[io.Int.Input("n", default=1)])

        @classmethod
        async def execute(cls, n):
            ctx = get_executing_context()
            seen["context"] = (ctx.prompt_id, ctx.node_id)
            seen["server"] = (PromptServer.instance.last_node_id,
                              PromptServer.instance.last_prompt_id, PromptServer.instance.client_id)
            await ComfyAPI().execution.set_progress(n, 4)
            PromptServer.instance.send_progress_text("half way", ctx.node_id)
            return io.NodeOutput(ui={"n": [n]})

    registry = NodeRegistry()
    register_node_class(registry, "Probe", Probe, python_module="custom_nodes.test")
    prompt = {"9": {"class_type": "Probe", "inputs": {"n": 2}}}
    result, sink = await run(Engine(registry), prompt, extra_data={"client_id": "c1"})
    assert result.status == "success", result.error
    assert seen["context"] == ("p1", "9")
    assert seen["server"] == ("9", "p1", "c1")
    assert [(p["value"], p["max"], p["node"]) for p in sink.of_type("progress")] == [(2, 4, "9")]
    assert sink.texts == [("9", "half way")]
    assert get_executing_context() is None


async def test_send_sync_inside_a_run_goes_to_the_run_unless_addressed_elsewhere():
    from comfy_api.latest import io
    from server import PromptServer

    from opencomfy.compat.loader import register_node_class
    from opencomfy.engine import NodeRegistry

    class Notify(io.ComfyNode):
        @classmethod
        def define_schema(cls):
            return io.Schema(node_id="Notify", is_output_node=True)

        @classmethod
        def execute(cls):
            PromptServer.instance.send_sync("pack.mine", {"a": 1})
            PromptServer.instance.send_sync("pack.mine", {"a": 2}, "c1")
            PromptServer.instance.send_sync("pack.other", {"a": 3}, "someone-else")
            return io.NodeOutput()

    registry = NodeRegistry()
    register_node_class(registry, "Notify", Notify, python_module="custom_nodes.test")
    host = []
    instance = PromptServer.instance
    previous = instance._send
    instance.attach(send=lambda event, data, sid: host.append((event, data, sid)))
    try:
        result, sink = await run(Engine(registry), {"1": {"class_type": "Notify", "inputs": {}}},
                                 extra_data={"client_id": "c1"})
    finally:
        instance._send = previous
    assert result.status == "success", result.error
    assert sink.of_type("pack.mine") == [{"a": 1}, {"a": 2}]
    assert host == [("pack.other", {"a": 3}, "someone-else")]


async def test_a_pack_importing_model_modules_loads_and_only_its_model_node_fails(engine, loaded):
    assert loaded.reports["model_pack"].nodes == ["ModelPackCheckpoint", "ModelPackBrightness"]
    prompt = {"1": {"class_type": "EmptyImage",
                    "inputs": {"width": 2, "height": 2, "batch_size": 1, "color": 0x404040}},
              "2": {"class_type": "ModelPackBrightness", "inputs": {"image": ["1", 0], "factor": 2.0}},
              "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}}}
    result, _ = await run(engine, prompt)
    assert result.status == "success", result.error

    prompt = {"1": {"class_type": "ModelPackCheckpoint", "inputs": {"ckpt_name": "x"}},
              "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}}
    result, _ = await run(engine, prompt)
    assert result.status == "error"
    assert result.error["node_id"] == "1"
    # comfy.sd is real: the missing checkpoint file is named.
    assert result.error["exception_type"].endswith("FileNotFoundError")
    assert "model file not found: x" in result.error["exception_message"]
