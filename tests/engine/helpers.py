"""Prompt factories and a run helper for the engine tests."""

from __future__ import annotations

import itertools

from opencomfy.engine import Engine, RecordingSink
from tests.engine.nodes_for_tests import make_registry

_ids = itertools.count()


def node(class_type: str, **inputs) -> dict:
    return {"class_type": class_type, "inputs": inputs}


def link(node_id: str, slot: int = 0) -> list:
    return [node_id, slot]


def make_engine(**kwargs) -> Engine:
    return Engine(make_registry(), progress_state_interval=0, **kwargs)


async def run(engine: Engine, prompt: dict, *, targets=None, extra_data=None, interrupt=None,
              cache_scope: str = ""):
    """Validate then run; returns (validation, result, sink). Fails the test if invalid."""
    validation = await engine.validate(prompt, targets)
    assert validation.ok, (validation.error, validation.node_errors)
    sink = RecordingSink()
    result = await engine.run(prompt, prompt_id=f"prompt-{next(_ids)}", extra_data=extra_data or {},
                              execute_outputs=validation.outputs, sink=sink, interrupt=interrupt,
                              cache_scope=cache_scope)
    return validation, result, sink
