"""ComfyUI's ``comfy_execution.graph_utils``: GraphBuilder for node expansion, link helpers."""

from opencomfy.engine.graph_utils import (  # noqa: F401
    ExecutionBlocker, GraphBuilder, Node, add_graph_prefix, is_link,
)

__all__ = ["GraphBuilder", "Node", "is_link", "add_graph_prefix", "ExecutionBlocker"]
