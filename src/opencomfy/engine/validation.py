"""Prompt validation with ComfyUI's error objects, plus static cycle detection.

The checks and messages follow ComfyUI's `validate_prompt` / `validate_inputs`. Unlike
ComfyUI, nodes are visited iteratively (a 10,000-node chain does not hit the recursion
limit) and static cycles are reported as `dependency_cycle` instead of recursing forever.
"""

from __future__ import annotations

import sys
import traceback
from collections import deque
from typing import Any

from opencomfy.engine.graph_utils import ExecutionBlocker
from opencomfy.engine.inputs import HiddenValues, gather_inputs
from opencomfy.engine.mapping import map_over_list, resolve_results
from opencomfy.engine.node_spec import SpecCache, signature_params
from opencomfy.engine.results import ValidationResult
from opencomfy.engine.types_check import types_compatible

COERCIONS = {"INT": int, "FLOAT": float, "STRING": str, "BOOLEAN": bool}


def full_type_name(klass: type) -> str:
    """`module.QualName`, or the bare name for builtins (ComfyUI's full_type_name)."""
    module = klass.__module__
    if module == "builtins":
        return klass.__qualname__
    return f"{module}.{klass.__qualname__}"


def _error(type_: str, message: str, details: str = "", extra_info: dict | None = None) -> dict:
    return {"type": type_, "message": message, "details": details, "extra_info": extra_info or {}}


class _NodeCheck:
    """The validation state of one node."""

    __slots__ = ("errors", "parents", "received_types", "valid")

    def __init__(self) -> None:
        self.errors: list[dict] = []
        self.parents: list[str] = []  # linked nodes validation descends into
        self.received_types: dict[str, Any] = {}
        self.valid = False


class PromptValidator:
    """Validates one prompt against a registry. Mutates the prompt (coerced constants)."""

    def __init__(self, registry, prompt: dict, partial_execution_targets: list | None):
        self.registry = registry
        self.prompt = prompt
        self.targets = partial_execution_targets
        self.specs = SpecCache(registry)
        self.checks: dict[str, _NodeCheck] = {}
        self.first_consumer: dict[str, tuple[str, Any, list]] = {}

    async def validate(self) -> ValidationResult:
        prompt = self.prompt
        if not isinstance(prompt, dict):
            return ValidationResult(False, _error("invalid_prompt", "Prompt must be an object"), [], {})
        outputs: list[str] = []
        for node_id, node in prompt.items():
            if not isinstance(node, dict) or "class_type" not in node:
                return ValidationResult(False, _error(
                    "invalid_prompt", "Cannot execute because a node is missing the class_type property.",
                    f"Node ID '#{node_id}'", {"node_id": node_id}), [], {})
            class_type = node["class_type"]
            cls = self.registry.get(class_type) if isinstance(class_type, str) else None
            if cls is None:
                title = (node.get("_meta") or {}).get("title", class_type) \
                    if isinstance(node.get("_meta"), dict) else class_type
                return ValidationResult(False, _error(
                    "invalid_prompt", f"Cannot execute because node {class_type} does not exist.",
                    f"Node ID '#{node_id}'",
                    {"node_id": node_id, "class_type": class_type, "node_title": title}), [], {})
            if getattr(cls, "OUTPUT_NODE", False) == True:  # noqa: E712 (ComfyUI's comparison)
                if self.targets is None or node_id in self.targets:
                    outputs.append(node_id)
        if not outputs:
            return ValidationResult(False, _error("prompt_no_outputs", "Prompt has no outputs"), [], {})

        order = self._visit_from(outputs)
        cyclic = self._find_cycles(order)
        for node_id in order:
            if node_id not in cyclic:
                await self._custom_validation(node_id, node_id in outputs)
        self._propagate_validity(order, cyclic)
        return self._report(outputs)

    # -- phase 1: static checks on every reachable node --------------------------------
    def _visit_from(self, outputs: list[str]) -> list[str]:
        order: list[str] = []
        queue = deque(outputs)
        seen = set(outputs)
        is_output = set(outputs)
        while queue:
            node_id = queue.popleft()
            order.append(node_id)
            check = _NodeCheck()
            self.checks[node_id] = check
            try:
                self._check_inputs(node_id, check)
            except Exception as ex:  # a broken link or INPUT_TYPES: blame this node
                check.parents = []
                check.errors = [self._exception_error(node_id, ex, node_id in is_output)]
            for parent in check.parents:
                if parent not in seen:
                    seen.add(parent)
                    queue.append(parent)
        return order

    def _check_inputs(self, node_id: str, check: _NodeCheck) -> None:
        node = self.prompt[node_id]
        inputs = node.get("inputs")
        if inputs is None:
            inputs = node["inputs"] = {}
        spec = self.specs.get(node["class_type"])
        cls = spec.cls
        validate_params: list[str] = []
        validate_kwargs = False
        if hasattr(cls, "VALIDATE_INPUTS"):
            validate_params, validate_kwargs = signature_params(cls.VALIDATE_INPUTS)
        checks_types = "input_types" not in validate_params
        errors = check.errors
        for category in ("required", "optional"):
            for name, raw_info in (spec.input_types.get(category) or {}).items():
                if category == "optional" and name in (spec.input_types.get("required") or {}):
                    continue
                _, input_type, options = spec.input_info(name)
                info = raw_info
                if name not in inputs:
                    if category == "required":
                        errors.append(_error("required_input_missing", "Required input is missing",
                                             name, {"input_name": name}))
                    continue
                value = inputs[name]
                if isinstance(value, list):
                    if len(value) != 2:
                        errors.append(_error(
                            "bad_linked_input",
                            "Bad linked input, must be a length-2 list of [node_id, slot_index]",
                            name, {"input_name": name, "input_config": info, "received_value": value}))
                        continue
                    source_id = value[0]
                    source = self.prompt[source_id]
                    slot = value[1]
                    if isinstance(slot, float) and slot.is_integer():
                        slot = int(slot)
                    received_type = self.specs.get(source["class_type"]).cls.RETURN_TYPES[slot]
                    check.received_types[name] = received_type
                    if checks_types and not types_compatible(received_type, input_type):
                        errors.append(_error(
                            "return_type_mismatch", "Return type mismatch between linked nodes",
                            f"{name}, received_type({received_type}) mismatch input_type({input_type})",
                            {"input_name": name, "input_config": info, "received_type": received_type,
                             "linked_node": value}))
                        continue
                    check.parents.append(source_id)
                    self.first_consumer.setdefault(source_id, (name, info, value))
                    continue
                error = self._check_constant(inputs, name, value, input_type, options or {}, info,
                                             skip_ranges=name in validate_params or validate_kwargs)
                if error is not None:
                    errors.append(error)

    @staticmethod
    def _check_constant(inputs: dict, name: str, value: Any, input_type: Any, options: dict,
                        info: Any, *, skip_ranges: bool) -> dict | None:
        try:
            if isinstance(value, dict) and "__value__" in value:
                value = value["__value__"]
                inputs[name] = value
            coerce = COERCIONS.get(input_type) if isinstance(input_type, str) else None
            if coerce is not None:
                value = coerce(value)
                inputs[name] = value
        except Exception as ex:
            return _error("invalid_input_type", f"Failed to convert an input value to a {input_type} value",
                          f"{name}, {value}, {ex}",
                          {"input_name": name, "input_config": info, "received_value": value,
                           "exception_message": str(ex)})
        if skip_ranges:  # declared in VALIDATE_INPUTS (or **kwargs): the node checks itself
            return None
        if "min" in options and value < options["min"]:
            return _error("value_smaller_than_min", f"Value {value} smaller than min of {options['min']}",
                          name, {"input_name": name, "input_config": info, "received_value": value})
        if "max" in options and value > options["max"]:
            return _error("value_bigger_than_max", f"Value {value} bigger than max of {options['max']}",
                          name, {"input_name": name, "input_config": info, "received_value": value})
        combo = input_type if isinstance(input_type, list) else \
            (options.get("options", []) if input_type == "COMBO" else None)
        if combo is not None and value not in combo:
            input_config = info
            if len(combo) > 20:  # don't echo huge lists such as every model file
                list_info = f"(list of length {len(combo)})"
                input_config = None
            else:
                list_info = str(combo)
            return _error("value_not_in_list", "Value not in list", f"{name}: '{value}' not in {list_info}",
                          {"input_name": name, "input_config": input_config, "received_value": value})
        return None

    def _exception_error(self, node_id: str, ex: Exception, is_output: bool) -> dict:
        exc_type, _, tb = sys.exc_info()
        exception_type = full_type_name(exc_type or type(ex))
        tb_lines = traceback.format_tb(tb)
        if is_output or node_id not in self.first_consumer:
            return _error("exception_during_validation", "Exception when validating node", str(ex),
                          {"exception_type": exception_type, "traceback": tb_lines})
        input_name, info, link = self.first_consumer[node_id]
        return _error("exception_during_inner_validation", "Exception when validating inner node", str(ex),
                      {"input_name": input_name, "input_config": info, "exception_message": str(ex),
                       "exception_type": exception_type, "traceback": tb_lines, "linked_node": link})

    # -- phase 2: static cycles -------------------------------------------------------
    def _find_cycles(self, order: list[str]) -> set[str]:
        """Nodes on a dependency cycle: what is left after peeling sources, then sinks."""
        parents = {n: [p for p in self.checks[n].parents if p in self.checks] for n in order}
        children: dict[str, list[str]] = {n: [] for n in order}
        for node_id, node_parents in parents.items():
            for parent in node_parents:
                children[parent].append(node_id)
        remaining = _peel(order, parents, children)
        if not remaining:
            return set()
        remaining = _peel(list(remaining), children, parents, within=remaining)
        members = sorted(remaining)
        for node_id in members:
            self.checks[node_id].errors = [_error(
                "dependency_cycle", "Dependency cycle detected",
                f"Node {node_id} is part of a dependency cycle among nodes {', '.join(members)}",
                {"node_id": node_id, "cycle_nodes": members})]
        return remaining

    # -- phase 3: VALIDATE_INPUTS ------------------------------------------------------
    async def _custom_validation(self, node_id: str, is_output: bool) -> None:
        check = self.checks[node_id]
        node = self.prompt[node_id]
        spec = self.specs.get(node["class_type"])
        cls = spec.cls
        if not hasattr(cls, "VALIDATE_INPUTS") or (check.errors and not check.parents and
                                                    check.errors[0]["type"].startswith("exception")):
            return
        params, has_kwargs = signature_params(cls.VALIDATE_INPUTS)
        try:
            data, _ = gather_inputs(node["inputs"], spec, node_id, HiddenValues())
            filtered = {name: values for name, values in data.items() if name in params or has_kwargs}
            if "input_types" in params:
                filtered["input_types"] = [check.received_types]
            results = await resolve_results(
                await map_over_list(cls, "VALIDATE_INPUTS", filtered, input_is_list=spec.input_is_list))
        except Exception as ex:
            check.errors = [self._exception_error(node_id, ex, is_output)]
            return
        names = [name for name in filtered if name != "input_types"] or list(filtered) or [None]
        declared = spec.inputs
        for result in results:
            if result is True or isinstance(result, ExecutionBlocker):
                continue
            for name in names:
                details = name if name is not None else "VALIDATE_INPUTS"
                if result is not False:
                    details += f" - {result}"
                info = None
                if name in declared:
                    category, input_type, options = declared[name]
                    info = (input_type, options)
                check.errors.append(_error(
                    "custom_validation_failed", "Custom validation failed for node", details,
                    {"input_name": name, "input_config": info,
                     "received_value": node["inputs"].get(name) if name else None}))

    # -- phase 4: results ----------------------------------------------------------------
    def _propagate_validity(self, order: list[str], cyclic: set[str]) -> None:
        # Parents before children: reverse BFS order is not topological, so iterate to a fixpoint
        # over a Kahn ordering of the acyclic part.
        parents = {n: self.checks[n].parents for n in order}
        children: dict[str, list[str]] = {n: [] for n in order}
        pending = {n: 0 for n in order}
        for node_id, node_parents in parents.items():
            for parent in node_parents:
                if parent in pending:
                    children[parent].append(node_id)
                    pending[node_id] += 1
        queue = deque(n for n in order if pending[n] == 0)
        while queue:
            node_id = queue.popleft()
            check = self.checks[node_id]
            check.valid = not check.errors and node_id not in cyclic and \
                all(self.checks[p].valid for p in check.parents)
            for child in children[node_id]:
                pending[child] -= 1
                if pending[child] == 0:
                    queue.append(child)

    def _report(self, outputs: list[str]) -> ValidationResult:
        good: list[str] = []
        node_errors: dict[str, dict] = {}
        failed: list[tuple[str, list[dict]]] = []
        for output in outputs:
            if self.checks[output].valid:
                good.append(output)
                continue
            for node_id in self._ancestry(output):
                errors = self.checks[node_id].errors
                if not errors:
                    continue  # invalid only because something upstream is
                entry = node_errors.get(node_id)
                if entry is None:
                    entry = node_errors[node_id] = {"errors": errors, "dependent_outputs": [],
                                                    "class_type": self.prompt[node_id]["class_type"]}
                    failed.append((node_id, errors))
                entry["dependent_outputs"].append(output)
        if not good:
            details = "\n".join(f"{e['message']}: {e['details']}" for _, errors in failed for e in errors)
            return ValidationResult(False, _error("prompt_outputs_failed_validation",
                                                  "Prompt outputs failed validation", details), [], node_errors)
        return ValidationResult(True, None, good, node_errors)

    def _ancestry(self, output: str) -> list[str]:
        seen = {output}
        queue = deque([output])
        found = []
        while queue:
            node_id = queue.popleft()
            found.append(node_id)
            for parent in self.checks[node_id].parents:
                if parent not in seen and parent in self.checks:
                    seen.add(parent)
                    queue.append(parent)
        return found


def _peel(nodes: list[str], incoming: dict[str, list[str]], outgoing: dict[str, list[str]],
          within: set[str] | None = None) -> set[str]:
    """Kahn's algorithm: the nodes that cannot be ordered (on or behind a cycle)."""
    allowed = set(nodes) if within is None else within
    count = {n: sum(1 for p in incoming[n] if p in allowed) for n in nodes}
    queue = deque(n for n in nodes if count[n] == 0)
    removed = set()
    while queue:
        node_id = queue.popleft()
        removed.add(node_id)
        for nxt in outgoing[node_id]:
            if nxt in count:
                count[nxt] -= 1
                if count[nxt] == 0:
                    queue.append(nxt)
    return allowed - removed


async def validate_prompt(registry, prompt: dict,
                          partial_execution_targets: list | None = None) -> ValidationResult:
    """Validate an API-format prompt; see `PromptValidator`."""
    return await PromptValidator(registry, prompt, partial_execution_targets).validate()
