"""Content keys for node outputs, computed once per node (linear in the graph size).

key(node) = blake2b(class_type, IS_CHANGED result, [node id if the node is not idempotent
or reads its UNIQUE_ID], every input as a constant or as (parent key, slot)).
Two nodes get the same key exactly when their whole upstream subgraphs are identical, as
with ComfyUI's ancestry signatures, but each key costs O(inputs) instead of O(ancestry).
A constant that cannot be represented (a tensor given to an expanded node) or an IS_CHANGED
of NaN makes the key unique, so the node and everything downstream re-run.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import math
import os
from typing import Any

from opencomfy.engine.graph_utils import ExecutionBlocker, is_link
from opencomfy.engine.inputs import HiddenValues, gather_inputs
from opencomfy.engine.mapping import map_over_list, resolve_results
from opencomfy.engine.node_spec import SpecCache, signature_params

log = logging.getLogger(__name__)

KEY_SIZE = 16  # content keys; unique keys are longer, so the two can never collide
_unique_counter = itertools.count()


class _Unrepresentable(Exception):
    pass


_process_salt = os.urandom(8)


def _unique_key() -> bytes:
    """A key no other node will ever have (the node re-runs every time)."""
    return b"unique:" + _process_salt + next(_unique_counter).to_bytes(8, "big")


def is_unique_key(key: bytes) -> bool:
    return len(key) != KEY_SIZE


_SIMPLE = (str, int, float, bool, type(None))


def constant_repr(value: Any) -> str:
    """A canonical text for JSON-like constants; raises for anything else."""
    kind = type(value)
    if kind in _SIMPLE:
        return repr(value)
    if kind is list or kind is tuple:
        inner = ",".join(constant_repr(v) for v in value)
        return f"[{inner}]" if kind is list else f"({inner})"
    if kind is dict:
        items = sorted((constant_repr(k), constant_repr(v)) for k, v in value.items())
        return "{" + ",".join(f"{k}:{v}" for k, v in items) + "}"
    raise _Unrepresentable(kind.__name__)


def _fingerprint_repr(results: list[Any]) -> str | None:
    """IS_CHANGED results as text, or None when they force a re-run (NaN, odd objects)."""
    parts = []
    for result in results:
        if isinstance(result, float) and math.isnan(result):
            return None
        try:
            parts.append(constant_repr(result))
        except _Unrepresentable:
            return None
    return ",".join(parts)


class CacheKeys:
    """Keys of the nodes of one run; IS_CHANGED results are gathered first (they may be async)."""

    def __init__(self, dynprompt, specs: SpecCache, hidden: HiddenValues, scope: str = ""):
        self.dynprompt = dynprompt
        self.scope = scope  # every key of the run carries it: scopes never share entries
        self.specs = specs
        self.hidden = hidden
        self.keys: dict[str, bytes] = {}
        self._fingerprints: dict[str, str | None] = {}

    async def fingerprint(self, node_ids) -> None:
        """Call IS_CHANGED (once per node per prompt) for the nodes whose class defines it."""
        for node_id in node_ids:
            if node_id in self._fingerprints:
                continue
            node = self.dynprompt.get_node(node_id)
            spec = self.specs.get(node["class_type"])
            if not spec.has_is_changed:
                continue
            self._fingerprints[node_id] = await self._call_is_changed(node_id, node, spec)

    async def _call_is_changed(self, node_id: str, node: dict, spec) -> str | None:
        try:
            data, _ = gather_inputs(node.get("inputs", {}), spec, node_id, self.hidden)
            params, has_kwargs = signature_params(spec.cls.IS_CHANGED)
            if not has_kwargs:  # ComfyUI passes everything; we spare nodes a TypeError
                data = {name: values for name, values in data.items() if name in params}
            results = await resolve_results(
                await map_over_list(spec.cls, "IS_CHANGED", data, input_is_list=spec.input_is_list))
            results = [None if isinstance(r, ExecutionBlocker) else r for r in results]
        except Exception as ex:  # ComfyUI treats a failing IS_CHANGED as "always changed"
            log.warning("IS_CHANGED of node %s failed: %s", node_id, ex)
            return None
        return _fingerprint_repr(results)

    def key_of(self, node_id: str) -> bytes:
        """The node's key; parents first, iteratively (no recursion limit on long chains)."""
        key = self.keys.get(node_id)
        if key is not None:
            return key
        return self._compute_with_parents(node_id)

    def _compute_with_parents(self, node_id: str) -> bytes:
        stack = [node_id]
        on_stack = {node_id}
        keys = self.keys
        while stack:
            current = stack[-1]
            if current in keys:
                stack.pop()
                on_stack.discard(current)
                continue
            try:
                node = self.dynprompt.get_node(current)
            except Exception:
                keys[current] = _unique_key()
                continue
            waiting = False
            for value in node.get("inputs", {}).values():
                if type(value) is list and is_link(value) and value[0] not in keys:
                    parent = value[0]
                    if parent in on_stack:  # a cycle: the scheduler reports it
                        keys[parent] = _unique_key()
                        continue
                    stack.append(parent)
                    on_stack.add(parent)
                    waiting = True
            if not waiting:
                keys[current] = self._compute(current, node)
        return self.keys[node_id]

    def _compute(self, node_id: str, node: dict) -> bytes:
        class_type = node.get("class_type")
        try:
            spec = self.specs.get(class_type)  # type: ignore[arg-type]  # a missing type raises KeyError
        except KeyError:
            return _unique_key()
        fingerprint = ""
        if spec.has_is_changed:
            fingerprint = self._fingerprints.get(node_id)
            if fingerprint is None:
                return _unique_key()
        parts = [self.scope, class_type, fingerprint]
        if spec.not_idempotent or spec.uses_unique_id:
            parts.append(node_id)
        keys = self.keys
        try:
            inputs = node.get("inputs", {})
            for name in sorted(inputs):
                value = inputs[name]
                if type(value) is list and is_link(value):
                    parent_key = keys.get(value[0])
                    if parent_key is None or len(parent_key) != KEY_SIZE:
                        return _unique_key()
                    parts.append(f"{name}=@{parent_key.hex()}:{int(value[1])}")
                else:
                    parts.append(f"{name}={constant_repr(value)}")
        except _Unrepresentable:
            return _unique_key()
        return hashlib.blake2b("\x1f".join(parts).encode(), digest_size=KEY_SIZE).digest()
