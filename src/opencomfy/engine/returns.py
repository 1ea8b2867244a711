"""Turning what node functions return into outputs, UI and expansions (ComfyUI's rules).

A call may return a tuple of outputs, an `ExecutionBlocker` (blocks every output), or a dict
with `ui`, `result` and/or `expand`. Outputs of all calls are merged per slot: list outputs
(`OUTPUT_IS_LIST`) are concatenated, others get one element per call. UI dicts are merged
key-wise, with the keys of the first.
"""

from __future__ import annotations

from typing import Any

from opencomfy.engine.graph_utils import ExecutionBlocker


class LinkedValues(list):
    """An expansion result that points at a node's output list (spliced in when merging)."""


class Returns:
    """The parsed returns of every call of one node execution."""

    __slots__ = ("per_call", "uis", "subgraphs", "has_subgraph")

    def __init__(self) -> None:
        self.per_call: list[Any] = []  # plain results, one per call
        self.uis: list[dict] = []
        self.subgraphs: list[tuple[dict | None, Any]] = []  # (graph or None, result) per call
        self.has_subgraph = False

    def ui(self) -> dict | None:
        if not self.uis:
            return None
        uis = self.uis
        return {key: [item for one in uis for item in one.get(key, [])] for key in uis[0]}


def parse_returns(results: list[Any], n_outputs: int) -> Returns:
    parsed = Returns()
    for result in results:
        if isinstance(result, dict):
            if result.get("ui") is not None:
                parsed.uis.append(result["ui"])
            if "expand" in result:
                parsed.has_subgraph = True
                value = result.get("result")
                if isinstance(value, ExecutionBlocker):
                    value = (value,) * n_outputs
                parsed.subgraphs.append((result["expand"], value))
            elif "result" in result:
                value = result["result"]
                if isinstance(value, ExecutionBlocker):
                    value = (value,) * n_outputs
                parsed.per_call.append(value)
                parsed.subgraphs.append((None, value))
            continue
        if isinstance(result, ExecutionBlocker):
            result = (result,) * n_outputs
        elif result is None:  # ComfyUI would fail on len(None); a node with no outputs is fine
            result = ()
        elif not isinstance(result, (tuple, list)):
            result = (result,)
        parsed.per_call.append(result)
        parsed.subgraphs.append((None, result))
    return parsed


def merge_outputs(per_call: list[Any], output_is_list: list[bool]) -> list[list[Any]]:
    """One list per output slot (the number of slots is that of the first call's result)."""
    if not per_call:
        return []
    outputs = []
    for index in range(len(per_call[0])):
        is_list = index < len(output_is_list) and output_is_list[index]
        merged: list[Any] = []
        for call in per_call:
            value = call[index] if index < len(call) else None
            if isinstance(value, LinkedValues):
                merged.extend(value)
            elif is_list and value is not None and not isinstance(value, ExecutionBlocker):
                merged.extend(value)
            else:
                merged.append(value)
        outputs.append(merged)
    return outputs
