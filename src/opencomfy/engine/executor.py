"""Running one validated prompt: ComfyUI's PromptExecutor semantics on one event loop.

Per node: answer from cache, or gather inputs, send `executing`, ask `check_lazy_status`,
call FUNCTION over the input lists (async calls become tasks that overlap), then record the
UI, expand sub-graphs, or store the outputs. See comfyui-behaviour.md section 1.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
import traceback
from typing import Any, NoReturn

from opencomfy.engine.cache import CacheEntry
from opencomfy.engine.cache_keys import CacheKeys, is_unique_key
from opencomfy.engine.dynamic_prompt import DynamicPrompt
from opencomfy.engine.graph_utils import ExecutionBlocker, is_link
from opencomfy.engine.inputs import HiddenValues, gather_inputs
from opencomfy.engine.mapping import map_over_list, resolve_results
from opencomfy.engine.node_spec import SpecCache
from opencomfy.engine.progress import (Interrupted, NodeContext, RunState, end_run, enter_node,
                                       leave_node)
from opencomfy.engine.results import RunResult
from opencomfy.engine.returns import LinkedValues, merge_outputs, parse_returns
from opencomfy.engine.scheduler import ExecutionList
from opencomfy.engine.validation import full_type_name

log = logging.getLogger(__name__)

SUCCESS, PENDING = "success", "pending"


def _now_ms() -> int:
    return int(time.time() * 1000)


def _format_value(value: Any) -> Any:
    if value is None or isinstance(value, (int, float, bool, str)):
        return value
    return str(value)


def _task_result(task: asyncio.Task) -> Any:
    if task.cancelled():  # CancelledError is a BaseException: turn it into a node failure
        raise RuntimeError("the node's async task was cancelled")
    return task.result()


class DuplicateNodeError(Exception):
    """An expansion reused a node id that already exists."""


class NodeFailure(Exception):
    """A node failed; `details` becomes the execution_error payload."""

    def __init__(self, details: dict):
        super().__init__(details.get("exception_message"))
        self.details = details


class PromptExecution:
    """The state of one run of one prompt."""

    def __init__(self, engine, prompt: dict, *, prompt_id: str, extra_data: dict,
                 execute_outputs: list[str], sink, interrupt, cache_scope: str = ""):
        self.engine = engine
        self.prompt = prompt
        self.prompt_id = prompt_id
        self.extra_data = extra_data
        self.execute_outputs = execute_outputs
        self.sink = sink
        self.interrupt = interrupt
        self.cache = engine.cache
        self.dynprompt = DynamicPrompt(prompt)
        self.specs = SpecCache(engine.registry)
        self.hidden = HiddenValues(prompt, self.dynprompt, extra_data)
        self.keys = CacheKeys(self.dynprompt, self.specs, self.hidden, scope=cache_scope)
        self.run_state = RunState(prompt_id=prompt_id, sink=sink, interrupt=interrupt,
                                  extra_data=extra_data, dynprompt=self.dynprompt,
                                  progress_state_interval=engine.progress_state_interval)
        self.results: dict[str, list[list[Any]]] = {}  # node id -> outputs in this run
        self.executed: list[str] = []
        self.executed_set: set[str] = set()
        self.ui_outputs: dict[str, dict] = {}
        self.meta: dict[str, dict] = {}
        self.messages: list[tuple[str, dict]] = []
        self.node_inputs: dict[str, dict] = {}
        self.async_pending: dict[str, list[Any]] = {}
        self.subgraph_pending: dict[str, list[tuple[dict | None, Any]]] = {}
        self.tasks: set[asyncio.Task] = set()
        self.wake = asyncio.Event()
        self.external_waits = 0
        self.list = ExecutionList(self.dynprompt, self._spec_of, self._is_available)
        self.list.track_readers = self.cache.releases_unused

    # -- helpers ---------------------------------------------------------------------
    def _spec_of(self, node_id: str):
        return self.specs.get(self.dynprompt.get_node(node_id)["class_type"])

    def _is_available(self, node_id: str) -> bool:
        return self._outputs_of(node_id) is not None

    def _outputs_of(self, node_id: str) -> list[list[Any]] | None:
        outputs = self.results.get(node_id)
        if outputs is not None:
            return outputs
        key = self.keys.keys.get(node_id)
        if key is None:
            if not self.dynprompt.has_node(node_id):
                return None
            key = self.keys.key_of(node_id)
        entry = self.cache.get(key)
        if entry is None:
            return None
        self.results[node_id] = entry.outputs
        if entry.ui is not None:
            self._record_ui(node_id, entry.ui)
        return entry.outputs

    def _message(self, event: str, data: dict) -> None:
        """Send a status message that also goes into history (ComfyUI's add_message)."""
        data["timestamp"] = _now_ms()
        self.messages.append((event, data))
        self.sink.send(event, data)

    def _record_ui(self, node_id: str, ui: dict) -> None:
        display, parent, real = self.run_state.node_ids(node_id)
        self.ui_outputs[node_id] = ui
        self.meta[node_id] = {"node_id": node_id, "display_node": display,
                              "parent_node": parent, "real_node_id": real}

    def _check_interrupt(self) -> None:
        if self.interrupt is not None and self.interrupt.is_set():
            raise Interrupted("Processing interrupted")

    # -- the run -----------------------------------------------------------------------
    async def run(self) -> RunResult:
        self._message("execution_start", {"prompt_id": self.prompt_id})
        status, error = "success", None
        try:
            await self._prepare()
            await self._loop()
        except Interrupted as ex:
            status, error = "interrupted", self._interrupted_payload(getattr(ex, "node_id", None))
            self._message("execution_interrupted", error)
        except NodeFailure as failure:
            status, error = "error", self._error_payload(failure.details)
            self._message("execution_error", error)
        except Exception as ex:  # a bug or a broken prompt outside any node
            log.exception("prompt %s failed outside a node", self.prompt_id)
            details = self._exception_details(None, ex, {})
            status, error = "error", self._error_payload(details)
            self._message("execution_error", error)
        finally:
            for task in self.tasks:
                task.cancel()
            self.cache.end_prompt()
            self.run_state.flush_progress_state()
            end_run(self.run_state)
        if status == "success":
            self._message("execution_success", {"prompt_id": self.prompt_id})
        return RunResult(status=status, outputs=self.ui_outputs, meta=self.meta,
                         messages=self.messages, error=error)

    async def _prepare(self) -> None:
        prompt_ids = list(self.prompt)
        await self.keys.fingerprint(prompt_ids)
        keys = {self.keys.key_of(node_id) for node_id in prompt_ids}
        self.cache.start_prompt(keys)
        self.engine.forget_instances(self.prompt)
        cached = [node_id for node_id in prompt_ids
                  if self.cache.get(self.keys.key_of(node_id)) is not None]
        self._message("execution_cached", {"nodes": cached, "prompt_id": self.prompt_id})
        for node_id in self.execute_outputs:
            if node_id in self.prompt:
                self.list.add_node(node_id)

    async def _loop(self) -> None:
        execution_list = self.list
        while execution_list.pending:
            node_id = execution_list.next_ready()
            if node_id is None:
                if self.external_waits:
                    await self._wait_for_tasks()
                    continue
                self._raise_cycle()
            self._check_interrupt_at(node_id)
            try:
                result = await self._execute(node_id)
            except (NodeFailure, Interrupted) as ex:
                self.run_state.error_node(node_id)
                if isinstance(ex, Interrupted) and not hasattr(ex, "node_id"):
                    ex.node_id = self.dynprompt.get_real_node_id(node_id)
                raise
            except Exception as ex:
                self.run_state.error_node(node_id)
                log.error("!!! Exception during processing !!! %s", ex, exc_info=True)
                raise NodeFailure(self._exception_details(node_id, ex, self.node_inputs.get(node_id, {}))) from ex
            if result is PENDING:
                execution_list.requeue(node_id)

    def _check_interrupt_at(self, node_id: str) -> None:
        if self.interrupt is not None and self.interrupt.is_set():
            ex = Interrupted("Processing interrupted")
            ex.node_id = self.dynprompt.get_real_node_id(node_id)
            raise ex

    async def _wait_for_tasks(self) -> None:
        while not self.wake.is_set():
            try:
                await asyncio.wait_for(self.wake.wait(), 0.05)
            except asyncio.TimeoutError:
                pass
            if self.interrupt is not None and self.interrupt.is_set():
                ex = Interrupted("Processing interrupted")
                ex.node_id = self.dynprompt.get_real_node_id(next(iter(self.async_pending), "")) \
                    if self.async_pending else None
                raise ex
        self.wake.clear()

    def _raise_cycle(self) -> NoReturn:
        cycle = self.list.nodes_in_cycle() or sorted(self.list.pending)
        blamed = cycle[0]
        for node_id in cycle:
            display = self.dynprompt.get_display_node_id(node_id)
            if display != node_id:
                blamed = display
                break
        raise NodeFailure({"node_id": blamed, "exception_message": "Dependency cycle detected",
                           "exception_type": "graph.DependencyCycleError", "traceback": [],
                           "current_inputs": []})

    # -- one node -----------------------------------------------------------------------
    async def _execute(self, node_id: str) -> str:
        node = self.dynprompt.get_node(node_id)
        class_type = node["class_type"]
        spec = self.specs.get(class_type)

        if node_id in self.async_pending:
            results = [_task_result(task) if isinstance(task, asyncio.Task) else task
                       for task in self.async_pending.pop(node_id)]
            return await self._handle_results(node_id, spec, results)
        if node_id in self.subgraph_pending:
            outputs = self._resolve_subgraph(node_id, spec)
            self._store(node_id, spec, outputs, self.ui_outputs.get(node_id))
            return SUCCESS

        entry = self.cache.get(self.keys.keys.get(node_id) or self.keys.key_of(node_id))
        if entry is not None:  # an output node answered from cache: replay its UI
            self.results[node_id] = entry.outputs
            if entry.ui is not None:
                self._record_ui(node_id, entry.ui)
            # ComfyUI sends `executed` for every cache hit, with a null output when there is no UI
            self.sink.send("executed", {"node": node_id,
                                        "display_node": self.dynprompt.get_display_node_id(node_id),
                                        "output": entry.ui, "prompt_id": self.prompt_id})
            self.run_state.finish_node(node_id)
            self.list.complete(node_id)
            return SUCCESS

        self.run_state.start_node(node_id)
        inputs, missing = gather_inputs(node.get("inputs", {}), spec, node_id, self.hidden,
                                        self._outputs_of)
        self.node_inputs[node_id] = inputs
        self.sink.send("executing", {"node": node_id,
                                     "display_node": self.dynprompt.get_display_node_id(node_id),
                                     "prompt_id": self.prompt_id})
        obj = self.engine.instance_for(node_id, class_type, spec.cls)
        token = enter_node(NodeContext(self.run_state, node_id, 0))
        try:
            if spec.has_lazy_status and await self._wait_for_lazy(node_id, node, spec, obj, inputs, missing):
                return PENDING
            if spec.function is None:
                raise AttributeError(f"Node class {class_type} has no FUNCTION")
            results = await map_over_list(
                obj, spec.function, inputs, input_is_list=spec.input_is_list, node_id=node_id,
                before_call=self._check_interrupt,
                on_blocked=lambda blocker: self._on_blocked(node_id, class_type, blocker),
                defer_async=True)
        finally:
            leave_node(token)
        if spec.is_async or len(results) > 1 or isinstance(results[0], asyncio.Task):
            if any(isinstance(result, asyncio.Task) for result in results):
                self._defer(node_id, results)
                return PENDING
        return await self._handle_results(node_id, spec, results)

    async def _wait_for_lazy(self, node_id, node, spec, obj, inputs, missing) -> bool:
        requested = await resolve_results(await map_over_list(
            obj, "check_lazy_status", inputs, input_is_list=spec.input_is_list, node_id=node_id,
            before_call=self._check_interrupt))
        names = {name for result in requested if isinstance(result, list) for name in result}
        node_inputs = node.get("inputs", {})
        blocked = False
        for name in names:
            if not isinstance(name, str) or (name in inputs and name not in missing):
                continue
            link = node_inputs.get(name)
            if is_link(link) and self.list.add_strong_link(link[0], node_id):
                blocked = True
        return blocked

    def _on_blocked(self, node_id: str, class_type: str, blocker: ExecutionBlocker) -> ExecutionBlocker:
        if blocker.message is None:
            return blocker
        # ComfyUI reports a blocker's message once, as an execution_error that does not end
        # the prompt (and is not part of history), then lets the blocker travel on silently.
        self.sink.send("execution_error", {
            "prompt_id": self.prompt_id, "node_id": node_id, "node_type": class_type,
            "executed": list(self.executed), "exception_message": f"Execution Blocked: {blocker.message}",
            "exception_type": "ExecutionBlocked", "traceback": [], "current_inputs": [],
            "current_outputs": []})
        return ExecutionBlocker(None)

    def _defer(self, node_id: str, results: list[Any]) -> None:
        self.async_pending[node_id] = results
        unblock = self.list.add_external_block(node_id)
        self.external_waits += 1
        pending = [task for task in results if isinstance(task, asyncio.Task)]

        async def await_completion() -> None:
            await asyncio.gather(*pending, return_exceptions=True)
            self.external_waits -= 1
            unblock()
            self.wake.set()

        waiter = asyncio.ensure_future(await_completion())
        self.tasks.update(pending)
        self.tasks.add(waiter)

    async def _handle_results(self, node_id: str, spec, results: list[Any]) -> str:
        parsed = parse_returns(results, len(spec.return_types))
        ui = parsed.ui()
        if ui is not None:
            self._record_ui(node_id, ui)
            self.sink.send("executed", {"node": node_id,
                                        "display_node": self.dynprompt.get_display_node_id(node_id),
                                        "output": ui, "prompt_id": self.prompt_id})
        if parsed.has_subgraph:
            await self._expand(node_id, parsed.subgraphs)
            return PENDING
        self._store(node_id, spec, merge_outputs(parsed.per_call, spec.output_is_list), ui)
        return SUCCESS

    def _store(self, node_id: str, spec, outputs: list[list[Any]], ui: dict | None) -> None:
        self.results[node_id] = outputs
        self.node_inputs.pop(node_id, None)  # kept only to report a failure
        key = self.keys.keys.get(node_id) or self.keys.key_of(node_id)
        if not is_unique_key(key):
            root = key if node_id in self.prompt else \
                self.keys.key_of(self.dynprompt.get_real_node_id(node_id))
            self.cache.set(key, CacheEntry(outputs, ui, root, self.keys.scope))
        self.run_state.finish_node(node_id)
        if node_id not in self.executed_set:
            self.executed_set.add(node_id)
            self.executed.append(node_id)
        self.list.complete(node_id)
        if self.cache.releases_unused:
            self._release_inputs(node_id)

    def _release_inputs(self, node_id: str) -> None:
        """Free the outputs of this node's parents once no pending node waits on them.

        A parent asked for again later (a lazy input, an expansion) simply runs again.
        """
        readers = self.list.readers
        for value in self.dynprompt.get_node(node_id).get("inputs", {}).values():
            if type(value) is list and is_link(value):
                parent = value[0]
                still_reading = readers.get(parent)
                if still_reading is None:
                    continue
                still_reading.discard(node_id)
                if not still_reading and parent not in self.list.pending:
                    del readers[parent]
                    if self.results.pop(parent, None) is not None:
                        self.cache.discard(self.keys.key_of(parent))

    # -- expansion ----------------------------------------------------------------------
    async def _expand(self, node_id: str, subgraphs: list[tuple[dict | None, Any]]) -> None:
        new_ids: list[str] = []
        new_outputs: list[str] = []
        new_links: list[list] = []
        for graph, result in subgraphs:
            if graph is None:
                continue
            for new_id in graph:
                if self.dynprompt.has_node(new_id):
                    raise DuplicateNodeError(
                        f"Attempt to add duplicate node {new_id}. Ensure node ids are unique and "
                        "deterministic or use graph_utils.GraphBuilder.")
            for new_id, info in graph.items():
                display = info.get("override_display_id", node_id)
                self.dynprompt.add_ephemeral_node(new_id, info, node_id, display)
                new_ids.append(new_id)
                if self.specs.get(info["class_type"]).is_output:
                    new_outputs.append(new_id)
            for value in result or ():
                if is_link(value):
                    new_links.append(value)
        await self.keys.fingerprint(new_ids)
        for new_id in new_outputs:
            self.list.add_node(new_id)
        for source, _slot in new_links:
            self.list.add_strong_link(source, node_id)
        self.subgraph_pending[node_id] = subgraphs

    def _resolve_subgraph(self, node_id: str, spec) -> list[list[Any]]:
        per_call = []
        for graph, result in self.subgraph_pending.pop(node_id):
            if graph is None:
                per_call.append(result)
                continue
            resolved = []
            for value in result or ():
                if is_link(value):
                    outputs = self._outputs_of(value[0])
                    slot = int(value[1])
                    values = outputs[slot] if outputs is not None and slot < len(outputs) else [None]
                    resolved.append(LinkedValues(values))
                else:
                    resolved.append(value)
            per_call.append(tuple(resolved))
        return merge_outputs(per_call, spec.output_is_list)

    # -- errors -------------------------------------------------------------------------
    def _exception_details(self, node_id: str | None, ex: BaseException, inputs: dict) -> dict:
        _, _, tb = sys.exc_info()
        message = str(ex)
        if type(ex).__name__ == "OutOfMemoryError":
            message += ("\nThis error means you ran out of memory on your GPU.\n\nTIPS: If the "
                        "workflow worked before you might have accidentally set the batch_size to "
                        "a large number.")
        return {
            "node_id": self.dynprompt.get_real_node_id(node_id) if node_id is not None else None,
            "exception_message": message,
            "exception_type": full_type_name(type(ex)),
            "traceback": traceback.format_tb(tb if tb is not None else ex.__traceback__),
            "current_inputs": {name: [_format_value(v) for v in values]
                               for name, values in inputs.items()},
        }

    def _node_type(self, node_id: str | None) -> str | None:
        node = self.prompt.get(node_id) if node_id is not None else None
        if node is None and node_id is not None and self.dynprompt.has_node(node_id):
            node = self.dynprompt.get_node(node_id)
        return node.get("class_type") if isinstance(node, dict) else None

    def _error_payload(self, details: dict) -> dict:
        node_id = details.get("node_id")
        return {
            "prompt_id": self.prompt_id, "node_id": node_id, "node_type": self._node_type(node_id),
            "executed": list(self.executed),
            "exception_message": details.get("exception_message", ""),
            "exception_type": details.get("exception_type", ""),
            "traceback": details.get("traceback", []),
            "current_inputs": details.get("current_inputs", {}),
            "current_outputs": list(self.results),
        }

    def _interrupted_payload(self, node_id: str | None) -> dict:
        return {"prompt_id": self.prompt_id, "node_id": node_id, "node_type": self._node_type(node_id),
                "executed": list(self.executed)}
