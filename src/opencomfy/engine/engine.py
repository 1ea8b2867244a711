"""The engine's front door: validate a prompt, run it, free caches."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
from typing import Any

from opencomfy.engine.cache import make_cache
from opencomfy.engine.events import NullSink
from opencomfy.engine.executor import PromptExecution
from opencomfy.engine.registry import NodeRegistry
from opencomfy.engine.results import RunResult, ValidationResult
from opencomfy.engine.validation import validate_prompt


class Engine:
    """Validates and executes API-format prompts with ComfyUI's semantics.

    One prompt runs at a time per engine (the caches are shared; a second `run` waits for the
    first). `run` executes
    on the caller's event loop: sync node functions run on that loop's thread, coroutine
    node functions run as concurrent tasks.
    """

    def __init__(self, registry: NodeRegistry, cache_mode: str = "classic", lru_size: int = 0,
                 progress_state_interval: float = 0.05):
        self.registry = registry
        self.cache_mode = cache_mode
        self.cache = make_cache(cache_mode, lru_size)
        self.progress_state_interval = progress_state_interval
        self._instances: dict[tuple[str, str], Any] = {}
        # The scope (workspace) the kept instances were made for: a node may hold a folder
        # from its __init__ (SaveImage's output directory), so another tenant starts afresh.
        self._instances_scope = ""
        # Runs share the caches, so they take turns (callers may sit on different threads/loops).
        self._run_lock = threading.Lock()

    async def validate(self, prompt: dict, partial_execution_targets: list | None = None
                       ) -> ValidationResult:
        """Check a prompt; coerces its constants in place, as ComfyUI does."""
        return await validate_prompt(self.registry, prompt, partial_execution_targets)

    async def run(self, prompt: dict, *, prompt_id: str, extra_data: dict | None = None,
                  execute_outputs: list[str] | None = None, sink=None, interrupt=None,
                  cache_scope: str = "") -> RunResult:
        """Execute a validated prompt; never raises for node failures (see RunResult).

        `cache_scope` partitions the output cache: runs with different scopes (tenants)
        never answer each other from it."""
        if execute_outputs is None:
            execute_outputs = [node_id for node_id, node in prompt.items()
                               if getattr(self.registry.get(node.get("class_type")), "OUTPUT_NODE", False)
                               == True]  # noqa: E712
        while not self._run_lock.acquire(blocking=False):
            await asyncio.sleep(0.01)
        try:
            if cache_scope != self._instances_scope:
                self._instances.clear()
                self._instances_scope = cache_scope
            execution = PromptExecution(self, prompt, prompt_id=prompt_id, extra_data=extra_data or {},
                                        execute_outputs=list(execute_outputs), sink=sink or NullSink(),
                                        interrupt=interrupt, cache_scope=cache_scope)
            with _inference_mode():
                return await execution.run()
        finally:
            self._run_lock.release()

    def free(self, unload_models: bool = False, free_memory: bool = False,
             scope: str | None = None) -> None:
        """Drop cached outputs and node instances (`POST /api/free`): all of them, or only
        those of one cache scope (a workspace must not empty another's caches)."""
        if scope is None:
            self.cache.clear()
            self._instances.clear()
        else:
            self.cache.clear_scope(scope)
            if scope == self._instances_scope:
                self._instances.clear()
        if unload_models or free_memory:
            import gc

            gc.collect()
            torch = sys.modules.get("torch")
            if torch is not None and torch.cuda.is_available():
                torch.cuda.empty_cache()

    # -- node instances, kept across prompts by (node id, class) as ComfyUI does ----------
    def instance_for(self, node_id: str, class_type: str, cls: type) -> Any:
        key = (node_id, class_type)
        obj = self._instances.get(key)
        if obj is None:
            obj = cls()
            self._instances[key] = obj
        return obj

    def forget_instances(self, prompt: dict) -> None:
        """Drop instances of nodes the new prompt does not have (ComfyUI's classic objects cache)."""
        stale = []
        for node_id, class_type in self._instances:
            root = node_id.split(".", 1)[0]  # expanded nodes live as long as their root node
            node = prompt.get(node_id) if node_id in prompt else prompt.get(root)
            if not isinstance(node, dict) or (node_id in prompt and node.get("class_type") != class_type):
                stale.append((node_id, class_type))
        for key in stale:
            del self._instances[key]


@contextlib.contextmanager
def _inference_mode():
    torch = sys.modules.get("torch")  # never import torch just for this
    if torch is None:
        yield
        return
    with torch.inference_mode():
        yield
