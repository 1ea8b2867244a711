"""ComfyUI's ``execution`` module, over opencomfy's engine.

Packs import it for its helpers (``get_input_data``, ``get_output_data``, ``validate_prompt``,
``format_value``, ``full_type_name``), its enums and classes (``ExecutionResult``,
``CacheType``, ``IsChangedCache``, ``PromptExecutor``) and to run a graph themselves.
Everything here delegates to :mod:`opencomfy.engine` with the registry the server bound, so
results, errors and events are the engine's.

What does not carry over: the server does not run prompts through this module, so a pack
that *replaces* ``PromptExecutor.execute`` or ``validate_prompt`` changes what it calls
itself, not how the server executes queued prompts.
"""

from __future__ import annotations

import asyncio
import enum
import threading
import uuid
from typing import Any, Callable

from opencomfy.engine.executor import DuplicateNodeError
from opencomfy.engine.graph_utils import ExecutionBlocker
from opencomfy.engine.inputs import HiddenValues, gather_inputs
from opencomfy.engine.mapping import map_over_list, resolve_results
from opencomfy.engine.node_spec import ClassSpec, get_input_info
from opencomfy.engine.returns import merge_outputs, parse_returns
from opencomfy.engine.validation import full_type_name

__all__ = ["CacheType", "DuplicateNodeError", "ExecutionResult", "IsChangedCache", "PromptExecutor",
           "MAXIMUM_HISTORY_SIZE", "SENSITIVE_EXTRA_DATA_KEYS", "format_value", "full_type_name",
           "get_input_data", "get_input_info", "get_output_data", "validate_inputs", "validate_prompt"]

MAXIMUM_HISTORY_SIZE = 10000
# extra_data keys that never reach history or logs (credentials of the API nodes).
SENSITIVE_EXTRA_DATA_KEYS = ("auth_token_comfy_org", "api_key_comfy_org")


class ExecutionResult(enum.Enum):
    SUCCESS = 0
    FAILURE = 1
    PENDING = 2


class CacheType(enum.Enum):
    CLASSIC = 0
    LRU = 1
    NONE = 2
    RAM_PRESSURE = 3


def format_value(x: Any) -> Any:
    """A value as error reports show it: JSON scalars as they are, anything else as text."""
    if x is None or isinstance(x, (int, float, bool, str)):
        return x
    return str(x)


def _registry():
    from opencomfy.compat import nodes

    registry = nodes.bound_registry()
    if registry is None:
        raise RuntimeError("execution: no node registry is bound (the server has not started)")
    return registry


def _run_sync(coro):
    """Run a coroutine to completion from synchronous code, inside or outside an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    # Called from a coroutine's thread: a loop already runs here, so use a thread of our own.
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as exc:  # handed back to the caller below
            box["error"] = exc

    thread = threading.Thread(target=target, name="execution-sync")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def get_input_data(inputs: dict, class_def: type, unique_id: str, execution_list=None,
                   dynprompt=None, extra_data: dict | None = None):
    """``(input_data_all, missing_keys, v3_data)``: every input of a node as a list of values.

    Links are resolved through ``execution_list.get_output_cache(from_id, to_id)`` when given;
    without it, linked inputs are missing (None). Hidden inputs come from the prompt,
    ``dynprompt`` and ``extra_data``.
    """
    resolve: Callable[[str], list | None] | None = None
    if execution_list is not None and hasattr(execution_list, "get_output_cache"):
        def from_cache(from_id: str):
            return execution_list.get_output_cache(from_id, unique_id)
        resolve = from_cache
    prompt = dynprompt.get_original_prompt() if dynprompt is not None and \
        hasattr(dynprompt, "get_original_prompt") else None
    hidden = HiddenValues(prompt=prompt, dynprompt=dynprompt, extra_data=extra_data or {})
    data, missing = gather_inputs(inputs, ClassSpec(class_def), unique_id, hidden, resolve)
    return data, {name: True for name in missing}, {}


async def get_output_data(prompt_id, unique_id, obj, input_data_all: dict, execution_block_cb=None,
                          pre_execute_cb=None, v3_data=None):
    """Run ``obj``'s FUNCTION over the input lists: ``(outputs, ui, has_subgraph, has_pending)``.

    ``outputs`` has one list per output slot; ``ui`` the merged UI dict (or {}); an expansion
    (``expand``) sets ``has_subgraph`` and its results are returned per call instead.
    """
    spec = ClassSpec(type(obj))
    results = await resolve_results(await map_over_list(
        obj, str(spec.function), input_data_all, input_is_list=spec.input_is_list, node_id=unique_id,
        before_call=pre_execute_cb, on_blocked=execution_block_cb))
    parsed = parse_returns(results, len(spec.return_types))
    if parsed.has_subgraph:
        return [value for _graph, value in parsed.subgraphs], parsed.ui() or {}, True, False
    return merge_outputs(parsed.per_call, spec.output_is_list), parsed.ui() or {}, False, False


class IsChangedCache:
    """Per prompt: each node's IS_CHANGED (fingerprint_inputs) answer, computed once."""

    def __init__(self, prompt_id: str, dynprompt, outputs_cache=None, is_changed_cache=None):
        self.prompt_id = prompt_id
        self.dynprompt = dynprompt
        self.outputs_cache = outputs_cache
        self.is_changed: dict[str, Any] = {}

    async def get(self, node_id: str):
        if node_id in self.is_changed:
            return self.is_changed[node_id]
        node = self.dynprompt.get_node(node_id)
        class_def = _registry().get(node["class_type"])
        if class_def is None or not hasattr(class_def, "IS_CHANGED"):
            self.is_changed[node_id] = False
            return False
        data, _missing, _v3 = get_input_data(node["inputs"], class_def, node_id, None,
                                             self.dynprompt)
        try:
            answers = await resolve_results(await map_over_list(class_def, "IS_CHANGED", data))
            value = [None if isinstance(a, ExecutionBlocker) else a for a in answers]
        except Exception:  # ComfyUI treats a failing IS_CHANGED as "changed"
            value = float("NaN")
        self.is_changed[node_id] = value
        return value


async def validate_inputs(prompt_id, prompt: dict, item: str, validated: dict | None = None):
    """``(valid, errors, node_id)`` for one node, validated with the whole prompt."""
    result = await _registry_engine().validate(prompt)
    errors = (result.node_errors.get(item) or {}).get("errors", [])
    return not errors, errors, item


def _registry_engine():
    from opencomfy.engine import Engine

    return Engine(_registry(), cache_mode="none")


def validate_prompt(prompt_id, prompt: dict, partial_execution_list: list | None = None):
    """``(valid, error, good_outputs, node_errors)`` as ComfyUI's validate_prompt returns them."""

    async def check():
        return await _registry_engine().validate(prompt, partial_execution_targets=partial_execution_list)

    result = _run_sync(check())
    return result.ok, result.error, list(result.outputs), result.node_errors


class _ServerSink:
    """Forwards the engine's events to a PromptServer-like object (``send_sync``)."""

    def __init__(self, executor: "PromptExecutor"):
        self.executor = executor

    def send(self, event: str, data: dict) -> None:
        if event in ("execution_error", "execution_interrupted"):
            return  # reported through PromptExecutor.handle_execution_error after the run
        self.executor.add_message(event, data, broadcast=event in ("execution_start", "executing"))

    def send_preview(self, image_format: str, image: bytes, metadata: dict) -> None:
        server = self.executor.server
        if server is not None and hasattr(server, "send_sync"):
            from opencomfy.compat.server import BinaryEventTypes

            server.send_sync(BinaryEventTypes.PREVIEW_IMAGE, (image_format, image), server.client_id)

    def send_progress_text(self, node_id: str, text: str) -> None:
        server = self.executor.server
        if server is not None and hasattr(server, "send_progress_text"):
            server.send_progress_text(text, node_id)


class PromptExecutor:
    """Runs a prompt to completion with the engine (ComfyUI's executor, one run at a time).

    After :meth:`execute`: ``success``, ``status_messages`` (``(event, data)`` pairs) and
    ``history_result`` (``{"outputs", "meta"}``) describe the run.
    """

    def __init__(self, server=None, cache_type: Any = False, cache_args=None):
        self.server = server
        mode = {CacheType.LRU: "lru", CacheType.NONE: "none"}.get(cache_type, "classic")
        size = int((cache_args or {}).get("lru", 0)) if mode == "lru" else 0
        from opencomfy.engine import Engine

        self._engine = Engine(_registry(), cache_mode=mode, lru_size=size)
        self.reset()

    def reset(self) -> None:
        self.success = True
        self.status_messages: list[tuple[str, dict]] = []
        self.history_result: dict = {}

    def add_message(self, event: str, data: dict, broadcast: bool) -> None:
        self.status_messages.append((event, data))
        server = self.server
        if server is not None and hasattr(server, "send_sync"):
            client_id = getattr(server, "client_id", None)
            if client_id is not None or broadcast:
                server.send_sync(event, data, client_id)

    def handle_execution_error(self, prompt_id, prompt, current_outputs, executed, error, ex) -> None:
        """Record a failed run (``error`` is the engine's execution_error payload)."""
        self.success = False
        from opencomfy.engine.progress import Interrupted

        if isinstance(ex, Interrupted):
            self.add_message("execution_interrupted", error, broadcast=True)
        else:
            self.add_message("execution_error", error, broadcast=False)

    async def execute_async(self, prompt: dict, prompt_id: str | None = None, extra_data: dict | None = None,
                            execute_outputs: list | None = None) -> None:
        self.reset()
        prompt_id = prompt_id or str(uuid.uuid4())
        extra_data = extra_data or {}
        if self.server is not None and "client_id" in extra_data:
            self.server.client_id = extra_data["client_id"]
        if not execute_outputs:
            validation = await self._engine.validate(prompt)
            if not validation.ok:
                self.success = False
                self.add_message("execution_error", {"prompt_id": prompt_id, **(validation.error or {}),
                                                     "node_errors": validation.node_errors}, broadcast=False)
                return
            execute_outputs = validation.outputs
        result = await self._engine.run(prompt, prompt_id=prompt_id, extra_data=extra_data,
                                        execute_outputs=list(execute_outputs), sink=_ServerSink(self))
        self.history_result = {"outputs": result.outputs, "meta": result.meta}
        if result.status == "success":
            self.success = True
            return
        from opencomfy.engine.progress import Interrupted

        error = result.error or {"prompt_id": prompt_id}
        ex = Interrupted() if result.status == "interrupted" else \
            RuntimeError(error.get("exception_message", "the prompt failed"))
        executed = [node for node in result.outputs]
        self.handle_execution_error(prompt_id, prompt, result.outputs, executed, error, ex)

    def execute(self, prompt: dict, prompt_id: str | None = None, extra_data: dict | None = None,
                execute_outputs: list | None = None) -> None:
        _run_sync(self.execute_async(prompt, prompt_id, extra_data, execute_outputs))


def __getattr__(name: str):
    # The queue class lives with the job service's view of it, when that is installed.
    if name == "PromptQueue":
        try:
            from opencomfy.compat import prompt_queue
        except ImportError:
            prompt_queue = None
        if prompt_queue is not None and hasattr(prompt_queue, "PromptQueueView"):
            return prompt_queue.PromptQueueView
    raise AttributeError(f"module 'execution' has no attribute {name!r}")
