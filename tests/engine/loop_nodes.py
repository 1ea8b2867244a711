"""Loop nodes built by expansion, in the style of ComfyUI's flow-control test pack.

WhileLoopClose re-creates the loop body (the nodes between the open and the close node) with
GraphBuilder while its condition holds; ForLoopClose expands into a countdown feeding a
WhileLoopClose through raw links. Written for these tests.
"""

from __future__ import annotations

from opencomfy.engine import GraphBuilder, is_link
from tests.engine.nodes_for_tests import ANY


class WhileLoopOpen:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"condition": ("BOOLEAN", {"default": True})},
                "optional": {"initial_value0": (ANY,), "initial_value1": (ANY,)}}

    RETURN_TYPES = ("FLOW_CONTROL", ANY, ANY)
    RETURN_NAMES = ("flow_control", "value0", "value1")
    FUNCTION = "run"

    def run(self, condition, initial_value0=None, initial_value1=None):
        return ("stub", initial_value0, initial_value1)


class WhileLoopClose:
    """Re-creates the loop body (the nodes between open and close) while `condition` holds."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"flow_control": ("FLOW_CONTROL", {"rawLink": True}),
                             "condition": ("BOOLEAN", {"forceInput": True})},
                "optional": {"initial_value0": (ANY,), "initial_value1": (ANY,)},
                "hidden": {"dynprompt": "DYNPROMPT", "unique_id": "UNIQUE_ID"}}

    RETURN_TYPES = (ANY, ANY)
    FUNCTION = "run"

    def run(self, flow_control, condition, dynprompt, unique_id, initial_value0=None, initial_value1=None):
        values = (initial_value0, initial_value1)
        if not condition:
            return values
        open_id = flow_control[0]
        contained = _nodes_between(dynprompt, open_id, unique_id) | {open_id, unique_id}
        graph = GraphBuilder()
        # Short generated ids (not prefix + old id) keep ids from growing with every iteration.
        clones = {}
        for node_id in sorted(contained):
            clone = graph.node(dynprompt.get_node(node_id)["class_type"])
            clone.set_override_display_id(dynprompt.get_display_node_id(node_id))
            clones[node_id] = clone
        for node_id in contained:
            for name, value in dynprompt.get_node(node_id)["inputs"].items():
                if is_link(value) and value[0] in clones:
                    clones[node_id].set_input(name, clones[value[0]].out(value[1]))
                else:
                    clones[node_id].set_input(name, value)
        clones[open_id].set_input("initial_value0", values[0])
        clones[open_id].set_input("initial_value1", values[1])
        closed = clones[unique_id]
        return {"result": (closed.out(0), closed.out(1)), "expand": graph.finalize()}


class ForLoopOpen:
    """`remaining` counts down; the while-loop clones this node with `initial_value0` set."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"remaining": ("INT", {"default": 1, "min": 0})},
                "optional": {"initial_value1": (ANY,)},
                "hidden": {"initial_value0": (ANY,)}}

    RETURN_TYPES = ("FLOW_CONTROL", "INT", ANY)
    FUNCTION = "run"

    def run(self, remaining, initial_value1=None, initial_value0=None):
        if initial_value0 is not None:
            remaining = initial_value0
        return ("stub", remaining, initial_value1)


class ForLoopClose:
    """Expands into `remaining - 1`, a condition and a WhileLoopClose fed with raw links."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"flow_control": ("FLOW_CONTROL", {"rawLink": True})},
                "optional": {"initial_value1": (ANY, {"rawLink": True})}}

    RETURN_TYPES = (ANY,)
    FUNCTION = "run"

    def run(self, flow_control, initial_value1=None):
        graph = GraphBuilder()
        open_id = flow_control[0]
        remaining = graph.node("IntAdd", a=[open_id, 1], b=-1)
        keep_going = graph.node("IntLess", a=0, b=remaining.out(0))
        close = graph.node("WhileLoopClose", flow_control=flow_control, condition=keep_going.out(0),
                           initial_value0=remaining.out(0), initial_value1=initial_value1)
        return {"result": (close.out(1),), "expand": graph.finalize()}


def _nodes_between(dynprompt, open_id: str, close_id: str) -> set[str]:
    """Nodes upstream of `close_id` that depend on `open_id` (the loop body)."""
    upstream: list[str] = []
    seen = {close_id}
    stack = [close_id]
    while stack:
        node_id = stack.pop()
        for value in dynprompt.get_node(node_id)["inputs"].values():
            if is_link(value) and value[0] not in seen:
                seen.add(value[0])
                upstream.append(value[0])
                stack.append(value[0])
    depends: dict[str, bool] = {open_id: True}

    def reaches_open(node_id: str) -> bool:
        if node_id not in depends:
            depends[node_id] = False
            depends[node_id] = any(reaches_open(v[0]) for v in dynprompt.get_node(node_id)["inputs"].values()
                                   if is_link(v))
        return depends[node_id]

    return {node_id for node_id in upstream if node_id != open_id and reaches_open(node_id)}


LOOP_NODE_CLASSES = {cls.__name__: cls for cls in (WhileLoopOpen, WhileLoopClose, ForLoopOpen, ForLoopClose)}
