"""Node expansion: GraphBuilder ids, display ids, a while-loop built by expansion, cycles."""

from __future__ import annotations

import pytest

from opencomfy.engine import GraphBuilder, add_graph_prefix
from tests.engine.helpers import link, make_engine, node, run


@pytest.fixture
def engine():
    return make_engine()


async def test_expansion_result_and_graph_builder_ids(engine):
    prompt = {"1": node("IntConst", value=1), "7": node("ExpandSum", a=link("1"), b=2, c=3),
              "8": node("Output", value=link("7"))}
    _, result, sink = await run(engine, prompt)
    assert result.outputs["8"] == {"value": [6]}
    ran = sink.executed_nodes()
    assert "7.0.0.1" in ran and "7.0.0.2" in ran
    # an output node inside the expansion shows on its expanding node and lands in history
    assert result.outputs["7.0.0.3"] == {"value": [6]}
    assert result.meta["7.0.0.3"] == {"node_id": "7.0.0.3", "display_node": "7", "parent_node": "7",
                                      "real_node_id": "7"}
    executing = {e["node"]: e["display_node"] for e in sink.of_type("executing")}
    assert executing["7.0.0.1"] == "7"


async def test_while_loop_by_expansion(engine):
    # i = 0, acc = 0; do { i += 1; acc += i } while (i < 5)
    prompt = {
        "open": node("WhileLoopOpen", condition=True, initial_value0=0, initial_value1=0),
        "inc": node("IntAdd", a=link("open", 1), b=1),
        "acc": node("IntAdd", a=link("open", 2), b=link("inc")),
        "cmp": node("IntLess", a=link("inc"), b=5),
        "close": node("WhileLoopClose", flow_control=link("open", 0), condition=link("cmp"),
                      initial_value0=link("inc"), initial_value1=link("acc")),
        "out_i": node("Output", value=link("close", 0)),
        "out_acc": node("Output", value=link("close", 1)),
    }
    _, result, sink = await run(engine, prompt)
    assert result.status == "success", result.error
    assert result.outputs["out_i"] == {"value": [5]}
    assert result.outputs["out_acc"] == {"value": [15]}
    # every iteration's body shows on the original body nodes
    displays = {e["display_node"] for e in sink.of_type("executing")}
    assert displays <= set(prompt)
    assert sum(1 for e in sink.of_type("executing") if e["display_node"] == "inc") == 5


@pytest.mark.parametrize("count, expected", [(1, 1), (4, 10), (12, 78)])
async def test_for_loop_by_expansion(engine, count, expected):
    # for remaining in count..1: acc += remaining  (the close node expands into a while loop)
    prompt = {
        "open": node("ForLoopOpen", remaining=count, initial_value1=0),
        "add": node("IntAdd", a=link("open", 2), b=link("open", 1)),
        "close": node("ForLoopClose", flow_control=link("open", 0), initial_value1=link("add")),
        "out": node("Output", value=link("close")),
    }
    _, result, sink = await run(engine, prompt)
    assert result.status == "success", result.error
    assert result.outputs["out"] == {"value": [expected]}
    assert sum(1 for e in sink.of_type("executing") if e["display_node"] == "add") == count
    assert max(len(node_id) for node_id in sink.executed_nodes()) < 40 + 12 * count
    # the same prompt again is answered from cache
    _, again, sink = await run(engine, prompt)
    assert again.outputs["out"] == {"value": [expected]} and sink.executed_nodes() == []


async def test_cycle_created_by_expansion_blames_the_expanding_node(engine):
    prompt = {"1": node("IntConst", value=1), "5": node("ExpandCycle", value=link("1")),
              "6": node("Output", value=link("5"))}
    _, result, _ = await run(engine, prompt)
    assert result.status == "error"
    assert result.error["node_id"] == "5"
    assert result.error["exception_type"] == "graph.DependencyCycleError"
    assert result.error["exception_message"] == "Dependency cycle detected"


async def test_duplicate_expansion_ids_fail(engine):
    class Dup:
        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {}}

        RETURN_TYPES = ("INT",)
        FUNCTION = "run"

        def run(self):
            return {"result": (1,), "expand": {"1": node("IntConst", value=1)}}

    engine.registry.add("Dup", Dup)
    prompt = {"1": node("IntConst", value=1), "2": node("Dup"), "3": node("Output", value=link("2"))}
    _, result, _ = await run(engine, prompt)
    assert result.status == "error"
    assert "duplicate node 1" in result.error["exception_message"]


def test_graph_builder_api():
    GraphBuilder.set_default_prefix("12", 0, 0)
    graph = GraphBuilder()
    a = graph.node("IntConst", value=1)
    b = graph.node("IntAdd", a=a.out(0), b=2)
    b.set_override_display_id("4")
    assert a.id == "12.0.0.1" and b.id == "12.0.0.2"
    assert GraphBuilder().prefix == "12.0.1."
    assert graph.lookup_node("2") is b
    graph.replace_node_output("1", 0, 5)
    assert graph.finalize()["12.0.0.2"] == {"class_type": "IntAdd", "inputs": {"a": 5, "b": 2},
                                            "override_display_id": "4"}
    graph.remove_node("1")
    assert list(graph.finalize()) == ["12.0.0.2"]
    prefixed, outputs = add_graph_prefix({"1": node("IntAdd", a=link("2"))}, (link("1"), 3), "p.")
    assert prefixed == {"p.1": node("IntAdd", a=["p.2", 0])} and outputs == (["p.1", 0], 3)
