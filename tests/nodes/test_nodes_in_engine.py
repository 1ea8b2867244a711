"""The MASK / LATENT / STRING / primitive / PreviewAny nodes run through the engine."""

from __future__ import annotations

import pytest

from opencomfy.engine import Engine, NodeRegistry, RecordingSink
from opencomfy.nodes import register_core_nodes


@pytest.fixture(scope="module")
def engine():
    registry = NodeRegistry()
    register_core_nodes(registry)
    return Engine(registry, cache_mode="none")


async def execute(engine, prompt):
    validation = await engine.validate(prompt)
    assert validation.ok, (validation.error, validation.node_errors)
    result = await engine.run(prompt, prompt_id="p", execute_outputs=validation.outputs,
                              sink=RecordingSink())
    assert result.status == "success", result.error
    return result.outputs


async def test_string_pipeline_with_combo_and_primitive(engine):
    prompt = {
        "1": {"class_type": "PrimitiveString", "inputs": {"value": "hello"}},
        "2": {"class_type": "StringConcatenate",
              "inputs": {"string_a": ["1", 0], "string_b": "world", "delimiter": " "}},
        "3": {"class_type": "CaseConverter", "inputs": {"string": ["2", 0], "mode": "Title Case"}},
        "4": {"class_type": "PreviewAny", "inputs": {"source": ["3", 0]}},
        "5": {"class_type": "StringLength", "inputs": {"string": ["2", 0]}},
        "6": {"class_type": "PreviewAny", "inputs": {"source": ["5", 0]}},
    }
    outputs = await execute(engine, prompt)
    assert outputs["4"] == {"text": ["Hello World"]}
    assert outputs["6"] == {"text": ["11"]}


async def test_a_combo_value_outside_the_options_is_rejected(engine):
    prompt = {
        "1": {"class_type": "CaseConverter", "inputs": {"string": "x", "mode": "Shout"}},
        "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}},
    }
    validation = await engine.validate(prompt)
    assert not validation.ok
    errors = validation.node_errors["1"]["errors"]
    assert errors[0]["type"] == "value_not_in_list"


async def test_latent_and_mask_pipeline_with_list_output(engine):
    prompt = {
        "1": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 32,
                                                          "batch_size": 3}},
        "2": {"class_type": "SolidMask", "inputs": {"value": 0.5, "width": 64, "height": 32}},
        "3": {"class_type": "GrowMask", "inputs": {"mask": ["2", 0], "expand": 1,
                                                   "tapered_corners": True}},
        "4": {"class_type": "SetLatentNoiseMask", "inputs": {"samples": ["1", 0],
                                                             "mask": ["3", 0]}},
        "5": {"class_type": "RebatchLatents", "inputs": {"latents": ["4", 0], "batch_size": 2}},
        "6": {"class_type": "LatentFromBatch", "inputs": {"samples": ["5", 0],
                                                          "batch_index": 0, "length": 1}},
        "7": {"class_type": "PreviewAny", "inputs": {"source": ["6", 0]}},
    }
    outputs = await execute(engine, prompt)
    # RebatchLatents yields two batches (2 + 1); LatentFromBatch and PreviewAny run per item.
    texts = outputs["7"]["text"]
    assert len(texts) == 2
    assert "'batch_index': [0]" in texts[0] and "'batch_index': [2]" in texts[1]
    assert all("noise_mask" in text for text in texts)  # 0.5 mask: not all ones, kept
