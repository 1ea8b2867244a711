"""Calling node methods over list inputs, as ComfyUI's `_async_map_node_over_list` does.

Every input is a list with one element per call. A node is called `max(len)` times and call
`i` takes element `min(i, len - 1)` of each input; with `INPUT_IS_LIST` it is called once
with the whole lists. A call whose inputs hold an `ExecutionBlocker` is skipped and yields
the blocker. Coroutine results become tasks so independent async nodes overlap.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any, Callable

from opencomfy.engine import progress
from opencomfy.engine.graph_utils import ExecutionBlocker, _default_prefix


def split_calls(inputs: dict[str, list], input_is_list: bool) -> list[dict[str, Any]]:
    """The keyword arguments of each call."""
    if input_is_list:
        return [inputs]
    if not inputs:
        return [{}]
    max_len = max(len(values) for values in inputs.values())
    if max_len == 0:
        return [{}]  # ComfyUI calls a node whose inputs are all empty once, with no arguments
    if max_len == 1:
        return [{name: values[0] if values else None for name, values in inputs.items()}]
    return [
        {name: (values[i] if len(values) > i else values[-1]) if values else None
         for name, values in inputs.items()}
        for i in range(max_len)
    ]


def find_blocker(call: dict[str, Any], input_is_list: bool) -> ExecutionBlocker | None:
    for value in call.values():
        if input_is_list and isinstance(value, list):
            for element in value:
                if isinstance(element, ExecutionBlocker):
                    return element
        elif isinstance(value, ExecutionBlocker):
            return value
    return None


async def map_over_list(owner: Any, func_name: str, inputs: dict[str, list], *,
                        input_is_list: bool = False, node_id: str | None = None,
                        before_call: Callable[[], None] | None = None,
                        on_blocked: Callable[[ExecutionBlocker], Any] | None = None,
                        defer_async: bool = False) -> list[Any]:
    """Call `owner.func_name` once per list element; returns one result per call.

    With `defer_async`, coroutines still running after one loop turn are returned as
    `asyncio.Task`s for the caller to await later; otherwise they are awaited here.
    """
    func = getattr(owner, func_name)
    results: list[Any] = []
    for index, call in enumerate(split_calls(inputs, input_is_list)):
        if before_call is not None:
            before_call()
        blocker = find_blocker(call, input_is_list)
        if blocker is not None:
            results.append(on_blocked(blocker) if on_blocked is not None else blocker)
            continue
        if node_id is not None:
            _default_prefix.set([node_id, index, 0])
        token = None
        if index > 0:  # tell the node (and its tasks) which list element this call is
            ctx = progress.current_context()
            if ctx is not None:
                token = progress._current.set(progress.NodeContext(ctx.run, ctx.node_id, index))
        try:
            result = func(**call)
            # Start coroutines now: a task copies the context (node, list index, id prefix).
            task = None if isinstance(result, (tuple, dict, list)) or not inspect.isawaitable(result) \
                else asyncio.ensure_future(result)
        finally:
            if token is not None:
                progress._current.reset(token)
        if task is None:
            results.append(result)
            continue
        results.append(await _settle(task, defer_async))
    return results


async def _settle(task: asyncio.Future, defer_async: bool) -> Any:
    await asyncio.sleep(0)  # give it a chance to finish without a round trip
    if task.done():
        return task.result()
    if defer_async:
        return task
    return await task


async def resolve_results(results: list[Any]) -> list[Any]:
    """Await any tasks left in a `map_over_list` result."""
    resolved = []
    for result in results:
        if isinstance(result, asyncio.Task):
            result = await result
        resolved.append(result)
    return resolved
