"""Gathering a node's inputs as lists (one element per call), with hidden inputs."""

from __future__ import annotations

from typing import Any, Callable

from opencomfy.engine.graph_utils import is_link
from opencomfy.engine.node_spec import ClassSpec


class HiddenValues:
    """Where hidden inputs come from: the prompt, the dynamic prompt and extra_data."""

    __slots__ = ("prompt", "dynprompt", "extra_data")

    def __init__(self, prompt: dict | None = None, dynprompt=None, extra_data: dict | None = None):
        self.prompt = prompt
        self.dynprompt = dynprompt
        self.extra_data = extra_data or {}

    def value(self, kind: str, node_id: str) -> Any:
        if kind == "PROMPT":
            return self.prompt if self.prompt is not None else {}
        if kind == "DYNPROMPT":
            return self.dynprompt
        if kind == "EXTRA_PNGINFO":
            return self.extra_data.get("extra_pnginfo")
        if kind == "UNIQUE_ID":
            return node_id
        if kind == "AUTH_TOKEN_COMFY_ORG":
            return self.extra_data.get("auth_token_comfy_org")
        if kind == "API_KEY_COMFY_ORG":
            return self.extra_data.get("api_key_comfy_org")
        return None


def gather_inputs(node_inputs: dict[str, Any], spec: ClassSpec, node_id: str,
                  hidden: HiddenValues,
                  resolve_link: Callable[[str], list | None] | None = None,
                  ) -> tuple[dict[str, list], set[str]]:
    """Every input as a list, and the names of links whose value is not available.

    Linked inputs are passed even when the class does not declare them (ComfyUI does);
    undeclared constants are not. `rawLink` inputs receive the link itself. Without
    `resolve_link` (validation, IS_CHANGED) every link is missing and passed as None.
    """
    data: dict[str, list] = {}
    missing: set[str] = set()
    declared = spec.inputs
    raw_links = spec.raw_link_inputs
    for name, value in node_inputs.items():
        if type(value) is list and is_link(value) and name not in raw_links:
            outputs = resolve_link(value[0]) if resolve_link is not None else None
            slot = int(value[1])
            if outputs is None or slot >= len(outputs):
                missing.add(name)
                data[name] = [None]
            else:
                data[name] = outputs[slot]
        elif name in declared:
            data[name] = [value]
    for name, kind in spec.hidden_special.items():
        data[name] = [hidden.value(kind, node_id)]
    return data, missing
