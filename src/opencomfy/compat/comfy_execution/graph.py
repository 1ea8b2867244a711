"""ComfyUI's ``comfy_execution.graph``: ExecutionBlocker and DynamicPrompt from our engine."""

from opencomfy.engine.dynamic_prompt import DynamicPrompt  # noqa: F401
from opencomfy.engine.graph_utils import ExecutionBlocker  # noqa: F401

__all__ = ["ExecutionBlocker", "DynamicPrompt"]
