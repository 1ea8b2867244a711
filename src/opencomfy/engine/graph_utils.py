"""Building blocks node authors use to talk to the engine: links, blockers, graph building.

These mirror ComfyUI's `comfy_execution.graph_utils` API (`is_link`, `ExecutionBlocker`,
`GraphBuilder`, `Node`, `add_graph_prefix`) so that compat can re-export them unchanged.
"""

from __future__ import annotations

import contextvars
from typing import Any

__all__ = ["is_link", "ExecutionBlocker", "GraphBuilder", "Node", "add_graph_prefix"]


def is_link(obj: Any) -> bool:
    """True for a link `[source_node_id: str, output_slot: int]` in an API prompt."""
    return (
        isinstance(obj, list)
        and len(obj) == 2
        and isinstance(obj[0], str)
        and isinstance(obj[1], (int, float))
    )


class ExecutionBlocker:
    """A value that stops every node it reaches.

    Return it (or put it in a node's outputs) to block downstream nodes. With a `message`,
    the first node it blocks reports an `execution_error` event while the prompt goes on;
    after that the blocker travels on silently.
    """

    __slots__ = ("message",)

    def __init__(self, message: str | None):
        self.message = message

    def __repr__(self) -> str:
        return f"ExecutionBlocker({self.message!r})"


# The executor sets the default id prefix before every node call. A context variable (not a
# class attribute as in ComfyUI) keeps concurrently running async nodes from sharing it.
_default_prefix: contextvars.ContextVar[list | None] = contextvars.ContextVar(
    "graph_builder_default_prefix", default=None
)


class Node:
    """One node being built by a GraphBuilder."""

    def __init__(self, id: str, class_type: str, inputs: dict[str, Any]):
        self.id = id
        self.class_type = class_type
        self.inputs = inputs
        self.override_display_id: str | None = None

    def out(self, index: int) -> list:
        """A link to output `index` of this node."""
        return [self.id, index]

    def set_input(self, key: str, value: Any) -> None:
        if value is None:
            self.inputs.pop(key, None)
        else:
            self.inputs[key] = value

    def get_input(self, key: str) -> Any:
        return self.inputs.get(key)

    def set_override_display_id(self, override_display_id: str) -> None:
        """Show this node's progress on another (usually original) node in the UI."""
        self.override_display_id = override_display_id

    def serialize(self) -> dict[str, Any]:
        data: dict[str, Any] = {"class_type": self.class_type, "inputs": self.inputs}
        if self.override_display_id is not None:
            data["override_display_id"] = self.override_display_id
        return data


class GraphBuilder:
    """Builds a sub-graph for node expansion with ids unique to the expanding call.

    Without an explicit prefix, ids look like `"{node}.{call_index}.{graph_index}.{n}"`,
    which is deterministic, so re-running a prompt produces the same ids.
    """

    def __init__(self, prefix: str | None = None):
        self.prefix = GraphBuilder.alloc_prefix() if prefix is None else prefix
        self.nodes: dict[str, Node] = {}
        self.id_gen = 1

    @classmethod
    def set_default_prefix(cls, prefix_root: str, call_index: int, graph_index: int = 0) -> None:
        _default_prefix.set([prefix_root, call_index, graph_index])

    @classmethod
    def alloc_prefix(cls, root: str | None = None, call_index: int | None = None,
                     graph_index: int | None = None) -> str:
        state = _default_prefix.get()
        if state is None:
            state = ["", 0, 0]
            _default_prefix.set(state)
        if root is None:
            root = state[0]
        if call_index is None:
            call_index = state[1]
        if graph_index is None:
            graph_index = state[2]
        state[2] += 1
        return f"{root}.{call_index}.{graph_index}."

    def node(self, class_type: str, id: str | None = None, **kwargs: Any) -> Node:
        if id is None:
            id = str(self.id_gen)
            self.id_gen += 1
        id = self.prefix + id
        if id in self.nodes:
            return self.nodes[id]
        node = Node(id, class_type, kwargs)
        self.nodes[id] = node
        return node

    def lookup_node(self, id: str) -> Node | None:
        return self.nodes.get(self.prefix + id)

    def finalize(self) -> dict[str, dict]:
        """The built graph as an API-format prompt fragment."""
        return {node_id: node.serialize() for node_id, node in self.nodes.items()}

    def replace_node_output(self, node_id: str, index: int, new_value: Any) -> None:
        """Point every input linked to output `index` of `node_id` at `new_value` instead."""
        node_id = self.prefix + node_id
        to_remove = []
        for node in self.nodes.values():
            for key, value in node.inputs.items():
                if is_link(value) and value[0] == node_id and value[1] == index:
                    if new_value is None:
                        to_remove.append((node, key))
                    else:
                        node.inputs[key] = new_value
        for node, key in to_remove:
            del node.inputs[key]

    def remove_node(self, id: str) -> None:
        self.nodes.pop(self.prefix + id, None)


def add_graph_prefix(graph: dict, outputs: list | tuple, prefix: str) -> tuple[dict, tuple]:
    """Prefix every node id (and every link) in `graph` and `outputs` with `prefix`."""
    new_graph = {}
    for node_id, node_info in graph.items():
        new_inputs = {}
        for name, value in node_info.get("inputs", {}).items():
            new_inputs[name] = [prefix + value[0], value[1]] if is_link(value) else value
        new_info = dict(node_info)
        new_info["inputs"] = new_inputs
        new_graph[prefix + node_id] = new_info
    new_outputs = tuple(
        [prefix + out[0], out[1]] if is_link(out) else out for out in outputs
    )
    return new_graph, new_outputs
