"""ComfyUI's ``comfy_execution.utils``: what is running in this context."""

from __future__ import annotations

from typing import NamedTuple


class ExecutionContext(NamedTuple):
    """The running prompt, node and list index (ComfyUI's ``CurrentNodeContext`` value)."""

    prompt_id: str
    node_id: str
    list_index: int | None = None


def get_executing_context() -> ExecutionContext | None:
    from opencomfy.engine.progress import current_context

    ctx = current_context()
    if ctx is None or ctx.node_id is None:
        return None
    return ExecutionContext(ctx.prompt_id, ctx.node_id, getattr(ctx, "list_index", None))


__all__ = ["ExecutionContext", "get_executing_context"]
