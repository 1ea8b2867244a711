"""Execution features: lazy inputs, blockers, lists, hidden inputs, async, failures, progress."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from opencomfy.engine import InterruptFlag
from opencomfy.engine import progress as progress_api
from tests.engine import nodes_for_tests as test_nodes
from tests.engine.helpers import link, make_engine, node, run


@pytest.fixture
def engine():
    return make_engine()


async def test_events_and_messages(engine):
    prompt = {"1": node("IntConst", value=2), "2": node("IntAdd", a=link("1"), b=3),
              "3": node("Output", value=link("2"))}
    _, result, sink = await run(engine, prompt)
    assert result.status == "success"
    assert result.outputs == {"3": {"value": [5]}}
    assert result.meta == {"3": {"node_id": "3", "display_node": "3", "parent_node": None, "real_node_id": "3"}}
    assert [name for name, _ in result.messages] == ["execution_start", "execution_cached", "execution_success"]
    assert all(isinstance(data["timestamp"], int) for _, data in result.messages)
    names = [name for name, _ in sink.events if name != "progress_state"]
    assert names == ["execution_start", "execution_cached", "executing", "executing", "executing",
                     "executed", "execution_success"]
    assert sink.executed_nodes() == ["1", "2", "3"]
    assert sink.of_type("executed")[0] == {"node": "3", "display_node": "3", "output": {"value": [5]},
                                           "prompt_id": sink.of_type("execution_start")[0]["prompt_id"]}
    final_state = sink.of_type("progress_state")[-1]["nodes"]
    assert {n: s["state"] for n, s in final_state.items()} == {"1": "finished", "2": "finished", "3": "finished"}


@pytest.mark.parametrize("switch_class", ["LazySwitch", "AsyncLazySwitch"])
@pytest.mark.parametrize("switch", [True, False])
async def test_lazy_inputs_evaluate_only_the_chosen_branch(engine, switch_class, switch):
    test_nodes.Recorder.RUNS.clear()
    prompt = {"t": node("Recorder", tag="true", value=1), "f": node("Recorder", tag="false", value=2),
              "s": node(switch_class, switch=switch, on_true=link("t"), on_false=link("f")),
              "o": node("Output", value=link("s"))}
    _, result, sink = await run(engine, prompt)
    assert result.outputs["o"] == {"value": [1 if switch else 2]}
    assert test_nodes.Recorder.RUNS == (["true"] if switch else ["false"])
    # the lazy node reports `executing` twice: before asking for its input and after it ran
    assert sink.executed_nodes().count("s") == 2


async def test_blocker_without_message_is_silent(engine):
    prompt = {"1": node("Blocker", value=1, block=True, message=""),
              "2": node("IntAdd", a=link("1"), b=1), "3": node("ScalarOutput", value=link("2")),
              "4": node("IntConst", value=7), "5": node("Output", value=link("4"))}
    _, result, sink = await run(engine, prompt)
    assert result.status == "success"
    assert "3" not in result.outputs  # blocked output shows nothing
    assert result.outputs["5"] == {"value": [7]}
    assert sink.of_type("execution_error") == []


async def test_blocker_with_message_reports_once_and_prompt_goes_on(engine):
    prompt = {"1": node("Blocker", value=1, block=True, message="stop here"),
              "2": node("IntAdd", a=link("1"), b=1), "3": node("ScalarOutput", value=link("2")),
              "4": node("IntConst", value=7), "5": node("Output", value=link("4"))}
    _, result, sink = await run(engine, prompt)
    assert result.status == "success"
    errors = sink.of_type("execution_error")
    assert len(errors) == 1
    assert errors[0]["node_id"] == "2"  # the first node the blocker reaches reports it
    assert errors[0]["exception_message"] == "Execution Blocked: stop here"
    assert errors[0]["exception_type"] == "ExecutionBlocked"
    assert [name for name, _ in result.messages][-1] == "execution_success"


async def test_output_list_maps_downstream_calls(engine):
    prompt = {"1": node("MakeList", start=1, count=4), "2": node("IntAdd", a=link("1"), b=10),
              "3": node("Output", value=link("2")), "4": node("ScalarOutput", value=link("1"))}
    _, result, _ = await run(engine, prompt)
    assert result.outputs["3"] == {"value": [11, 12, 13, 14]}
    # a non-list-input output node is called once per element, and its UI lists are concatenated
    assert result.outputs["4"] == {"value": [1, 2, 3, 4]}


async def test_broadcast_rule_repeats_the_last_element(engine):
    prompt = {"1": node("MakeList", start=1, count=3), "2": node("MakeList", start=100, count=2),
              "3": node("IntAdd", a=link("1"), b=link("2")), "4": node("Output", value=link("3"))}
    _, result, _ = await run(engine, prompt)
    assert result.outputs["4"] == {"value": [101, 103, 104]}  # 1+100, 2+101, 3+101


async def test_input_is_list_gets_whole_lists(engine):
    prompt = {"1": node("MakeList", start=1, count=4), "2": node("ListSum", values=link("1"), scale=3),
              "3": node("Output", value=link("2", 0)), "4": node("Output", value=link("2", 1))}
    _, result, _ = await run(engine, prompt)
    assert result.outputs["3"] == {"value": [30]}
    assert result.outputs["4"] == {"value": [4]}


async def test_hidden_inputs(engine):
    prompt = {"1": node("Hidden", value=1)}
    extra = {"extra_pnginfo": {"workflow": {"nodes": []}}, "auth_token_comfy_org": "tok",
             "api_key_comfy_org": "key", "client_id": "c"}
    _, result, _ = await run(engine, prompt, extra_data=extra)
    assert result.outputs["1"] == {"prompt_nodes": ["1"], "extra": [{"workflow": {"nodes": []}}],
                                   "uid": ["1"], "dyn_has_self": [True], "token": ["tok"], "key": ["key"]}


async def test_undeclared_linked_inputs_are_passed(engine):
    prompt = {"1": node("IntConst", value=4), "2": node("Kwargs", extra=link("1"), constant=5)}
    _, result, _ = await run(engine, prompt)
    # linked inputs reach the node although it does not declare them; constants do not
    assert result.outputs["2"] == {"names": ["extra"], "values": [4]}


async def test_failure_reports_details_and_stops(engine):
    prompt = {"1": node("IntConst", value=4), "2": node("Raise", value=link("1")),
              "3": node("Output", value=link("2"))}
    _, result, sink = await run(engine, prompt)
    assert result.status == "error"
    error = result.error
    assert error["node_id"] == "2" and error["node_type"] == "Raise"
    assert error["exception_type"] == "ValueError"
    assert error["exception_message"] == "bad value 4"
    assert error["current_inputs"] == {"value": [4]}
    assert error["executed"] == ["1"]
    assert error["current_outputs"] == ["1"]
    assert any("raise ValueError" in line for line in error["traceback"])
    assert [name for name, _ in result.messages][-1] == "execution_error"
    assert "3" not in sink.executed_nodes()
    states = sink.of_type("progress_state")[-1]["nodes"]
    assert states["2"]["state"] == "error"


async def test_async_nodes_run_concurrently(engine):
    prompt = {str(i): node("AsyncSleep", value=i, seconds=1.0) for i in range(3)}
    prompt["sum1"] = node("IntAdd", a=link("0"), b=link("1"))
    prompt["sum2"] = node("IntAdd", a=link("sum1"), b=link("2"))
    prompt["out"] = node("Output", value=link("sum2"))
    started = time.monotonic()
    _, result, _ = await run(engine, prompt)
    elapsed = time.monotonic() - started
    assert result.outputs["out"] == {"value": [3]}
    assert elapsed < 1.6, elapsed  # three one-second sleeps overlap


async def test_async_failure(engine):
    prompt = {"1": node("AsyncFail", value=1), "2": node("Output", value=link("1"))}
    _, result, _ = await run(engine, prompt)
    assert result.status == "error"
    assert result.error["exception_message"] == "async boom"
    assert result.error["node_id"] == "1"


async def test_interrupt_between_nodes():
    engine = make_engine()
    flag = InterruptFlag()
    test_nodes.InterruptSelf.FLAG = flag
    prompt = {"1": node("IntConst", value=1), "2": node("InterruptSelf", value=link("1")),
              "3": node("Output", value=link("2"))}
    _, result, sink = await run(engine, prompt, interrupt=flag)
    assert result.status == "interrupted"
    assert result.error["node_id"] == "2" and result.error["node_type"] == "InterruptSelf"
    assert result.error["executed"] == ["1"]
    assert [name for name, _ in result.messages][-1] == "execution_interrupted"
    assert "3" not in sink.executed_nodes()


async def test_interrupt_stops_waiting_async_nodes():
    engine = make_engine()
    flag = InterruptFlag()
    prompt = {"1": node("AsyncSleep", value=1, seconds=5.0), "2": node("Output", value=link("1"))}
    threading.Timer(0.2, flag.set).start()
    started = time.monotonic()
    _, result, _ = await run(engine, prompt, interrupt=flag)
    assert result.status == "interrupted"
    assert time.monotonic() - started < 2


async def test_progress_preview_and_custom_events(engine):
    prompt = {"1": node("Progress", steps=3), "2": node("Output", value=link("1"))}
    _, result, sink = await run(engine, prompt, extra_data={"client_id": "abc"})
    progress = sink.of_type("progress")
    assert [(p["value"], p["max"], p["node"]) for p in progress] == [(1, 3, "1"), (2, 3, "1"), (3, 3, "1")]
    assert len(sink.previews) == 1
    image_format, data, metadata = sink.previews[0]
    assert image_format == "JPEG" and data[:2] == b"\xff\xd8"
    assert metadata["node_id"] == "1" and metadata["image_type"] == "image/jpeg"
    assert metadata["display_node_id"] == "1" and metadata["real_node_id"] == "1"
    from PIL import Image
    import io
    assert max(Image.open(io.BytesIO(data)).size) == 16  # downscaled to max_size
    assert sink.of_type("custom_event") == [{"steps": 3}]
    running = [s["nodes"]["1"] for s in sink.of_type("progress_state") if s["nodes"].get("1", {}).get("state") == "running"]
    assert any(s["value"] == 2 and s["max"] == 3 for s in running)


async def test_context_reaches_foreign_threads(engine):
    seen = {}

    class ThreadNode:
        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {}}

        RETURN_TYPES = ()
        FUNCTION = "run"
        OUTPUT_NODE = True

        def run(self):
            def work():
                ctx = progress_api.current_context()
                seen["ids"] = (ctx.prompt_id, ctx.node_id, ctx.client_id)
                progress_api.report_progress(1, 2)
            thread = threading.Thread(target=work)
            thread.start()
            thread.join()
            return {"ui": {"ok": [True]}}

    engine.registry.add("ThreadNode", ThreadNode)
    _, result, sink = await run(engine, {"9": node("ThreadNode")}, extra_data={"client_id": "cid"})
    assert seen["ids"][1:] == ("9", "cid")
    assert sink.of_type("progress")[0]["node"] == "9"
    assert progress_api.current_context() is None  # nothing runs any more


async def test_run_from_a_worker_thread_with_its_own_loop(engine):
    prompt = {"1": node("AsyncSleep", value=5, seconds=0.01), "2": node("Output", value=link("1"))}
    validation = await engine.validate(prompt)
    box = {}

    def worker():
        box["result"] = asyncio.run(engine.run(prompt, prompt_id="t", execute_outputs=validation.outputs))

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert box["result"].outputs == {"2": {"value": [5]}}
