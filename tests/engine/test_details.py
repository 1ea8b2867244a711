"""Smaller contracts: rawLink, the loop thread, progress_state coalescing, context unpacking."""

from __future__ import annotations

import threading

from opencomfy.engine import Engine, RecordingSink
from opencomfy.engine import progress as progress_api
from tests.engine.helpers import link, make_engine, node, run
from tests.engine.nodes_for_tests import make_registry


class RawLinkShow:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"source": ("INT", {"rawLink": True})}}

    RETURN_TYPES = ()
    FUNCTION = "run"
    OUTPUT_NODE = True

    def run(self, source):
        ctx = progress_api.current_context()
        prompt_id, node_id, sink, interrupt, extra_data = ctx  # documented unpacking
        return {"ui": {"source": [source], "thread": [threading.get_ident()], "node": [node_id]}}


async def test_raw_link_input_receives_the_link_on_the_loop_thread():
    engine = make_engine()
    engine.registry.add("RawLinkShow", RawLinkShow)
    prompt = {"1": node("IntConst", value=3), "2": node("RawLinkShow", source=link("1"))}
    _, result, sink = await run(engine, prompt)
    assert result.outputs["2"]["source"] == [["1", 0]]
    assert result.outputs["2"]["thread"] == [threading.get_ident()]  # sync nodes run on the loop thread
    assert result.outputs["2"]["node"] == ["2"]
    assert sink.executed_nodes() == ["1", "2"]  # the linked node still runs first


async def test_progress_state_is_coalesced_but_the_final_state_is_sent():
    engine = Engine(make_registry(), progress_state_interval=60)
    prompt = {"0": node("IntConst", value=0)}
    for i in range(1, 100):
        prompt[str(i)] = node("IntAdd", a=link(str(i - 1)), b=1)
    prompt["out"] = node("Output", value=link("99"))
    validation = await engine.validate(prompt)
    sink = RecordingSink()
    await engine.run(prompt, prompt_id="p", execute_outputs=validation.outputs, sink=sink)
    states = sink.of_type("progress_state")
    # every change up to 64 nodes (as ComfyUI), then one flush at the end
    assert 64 * 2 - 2 <= len(states) <= 64 * 2 + 2
    assert len(states[-1]["nodes"]) == 101
    assert all(s["state"] == "finished" for s in states[-1]["nodes"].values())


async def test_cached_parent_ui_is_in_history_outputs():
    engine = make_engine()

    class ShowAndPass:
        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"value": ("INT",)}}

        RETURN_TYPES = ("INT",)
        FUNCTION = "run"

        def run(self, value):
            return {"ui": {"seen": [value]}, "result": (value,)}

    engine.registry.add("ShowAndPass", ShowAndPass)
    prompt = {"1": node("IntConst", value=3), "2": node("ShowAndPass", value=link("1")),
              "3": node("Output", value=link("2"))}
    _, first, _ = await run(engine, prompt)
    assert first.outputs == {"2": {"seen": [3]}, "3": {"value": [3]}}
    _, second, sink = await run(engine, prompt)
    assert sink.executed_nodes() == []
    assert second.outputs == first.outputs


async def test_run_without_execute_outputs_runs_every_output_node():
    engine = make_engine()
    prompt = {"1": node("IntConst", value=3), "2": node("Output", value=link("1"))}
    await engine.validate(prompt)
    result = await engine.run(prompt, prompt_id="x")
    assert result.outputs == {"2": {"value": [3]}}
    assert result.history_status()["status_str"] == "success"


async def test_output_nodes_and_their_parents_run_as_early_as_possible():
    engine = make_engine()
    # two independent branches: a long one, and a short one that ends in a preview
    prompt = {"a1": node("IntConst", value=1), "a2": node("IntAdd", a=link("a1"), b=1),
              "a3": node("IntAdd", a=link("a2"), b=1), "a4": node("IntAdd", a=link("a3"), b=1),
              "b1": node("IntConst", value=5), "b2": node("IntAdd", a=link("b1"), b=1),
              "preview": node("ScalarOutput", value=link("b2")),
              "end": node("Output", value=link("a4"))}
    _, _, sink = await run(engine, prompt, targets=["end", "preview"])
    assert sink.executed_nodes()[:3] == ["b1", "b2", "preview"]


async def test_small_prompts_get_progress_state_on_every_change():
    engine = Engine(make_registry())  # default coalescing interval
    prompt = {"1": node("IntConst", value=1), "2": node("IntAdd", a=link("1"), b=1),
              "3": node("Output", value=link("2"))}
    validation = await engine.validate(prompt)
    sink = RecordingSink()
    await engine.run(prompt, prompt_id="p", execute_outputs=validation.outputs, sink=sink)
    states = [{n: s["state"] for n, s in event["nodes"].items()} for event in sink.of_type("progress_state")]
    assert states == [
        {"1": "running"}, {"1": "finished"},
        {"1": "finished", "2": "running"}, {"1": "finished", "2": "finished"},
        {"1": "finished", "2": "finished", "3": "running"}, {"1": "finished", "2": "finished", "3": "finished"},
    ]


async def test_list_index_is_in_the_context_of_each_call():
    engine = make_engine()
    seen = []

    class Indexed:
        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"value": ("INT",)}}

        RETURN_TYPES = ("INT",)
        FUNCTION = "run"

        async def run(self, value):
            ctx = progress_api.current_context()
            seen.append((value, ctx.node_id, ctx.list_index))
            return (value,)

    engine.registry.add("Indexed", Indexed)
    prompt = {"1": node("MakeList", start=10, count=3), "2": node("Indexed", value=link("1")),
              "3": node("Output", value=link("2"))}
    _, result, _ = await run(engine, prompt)
    assert result.outputs["3"] == {"value": [10, 11, 12]}
    assert sorted(seen) == [(10, "2", 0), (11, "2", 1), (12, "2", 2)]


async def test_concurrent_runs_take_turns():
    import asyncio
    import time

    engine = make_engine(cache_mode="none")
    prompt = {"1": node("AsyncSleep", value=1, seconds=0.2), "2": node("Output", value=link("1"))}
    validation = await engine.validate(prompt)
    started = time.monotonic()
    results = await asyncio.gather(*(engine.run(prompt, prompt_id=f"p{i}", execute_outputs=validation.outputs)
                                     for i in range(2)))
    assert [r.status for r in results] == ["success", "success"]
    assert time.monotonic() - started >= 0.4  # one after the other, not interleaved
