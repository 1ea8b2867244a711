"""Link type compatibility, as ComfyUI's `validate_node_input`."""

from __future__ import annotations

from typing import Any


def types_compatible(received_type: Any, input_type: Any, strict: bool = False) -> bool:
    """True when an output of `received_type` may feed an input of `input_type`.

    Equality is tested as `not a != b` so that str subclasses overriding `__ne__` (IO.ANY,
    "*" wildcards of custom packs) decide; comma-separated type sets match when they overlap
    (or, with `strict`, when every received type is accepted).
    """
    if not received_type != input_type:
        return True
    if not isinstance(received_type, str) or not isinstance(input_type, str):
        return False
    received = {part.strip() for part in received_type.split(",")}
    accepted = {part.strip() for part in input_type.split(",")}
    if strict:
        return received.issubset(accepted)
    return not received.isdisjoint(accepted)
