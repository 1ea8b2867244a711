"""Graph execution with ComfyUI's semantics; knows nothing of HTTP, tenants or databases.

    registry = NodeRegistry(); registry.add("MyNode", MyNode)
    engine = Engine(registry)
    v = await engine.validate(prompt)
    r = await engine.run(prompt, prompt_id="...", execute_outputs=v.outputs, sink=sink)
"""

from opencomfy.engine.dynamic_prompt import DynamicPrompt, NodeNotFoundError
from opencomfy.engine.engine import Engine
from opencomfy.engine.events import EventSink, InterruptFlag, NullSink, RecordingSink
from opencomfy.engine.graph_utils import ExecutionBlocker, GraphBuilder, Node, add_graph_prefix, is_link
from opencomfy.engine.progress import Interrupted
from opencomfy.engine.registry import NodeRegistry
from opencomfy.engine.results import RunResult, ValidationResult
from opencomfy.engine.types_check import types_compatible

__all__ = [
    "Engine", "NodeRegistry", "EventSink", "InterruptFlag", "NullSink", "RecordingSink",
    "ValidationResult", "RunResult", "ExecutionBlocker", "GraphBuilder", "Node", "is_link",
    "add_graph_prefix", "DynamicPrompt", "NodeNotFoundError", "Interrupted", "types_compatible",
]
