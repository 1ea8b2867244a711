"""Loader variants: sync entry points, V3 classes in V1 mappings, pyproject web folders,
prestartup scripts, nodes added through ``nodes.NODE_CLASS_MAPPINGS``."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from opencomfy.engine import Engine
from tests.compat.conftest import build

EXTRA = Path(__file__).parent / "packs_extra"


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    base = tmp_path_factory.mktemp("variants")
    for pack in ("sync_entry_pack", "mixed_pack", "exiting_pack"):
        shutil.copytree(EXTRA / pack, base / "custom_nodes" / pack,
                        ignore=shutil.ignore_patterns("__pycache__"))
    return build(base)


def test_sync_entrypoint_and_v3_classes_in_v1_mappings_load(registry):
    reports = {r.name: r for r in registry.custom_node_reports}
    assert reports["sync_entry_pack"].success and reports["sync_entry_pack"].nodes == [
        "V3SumList", "V3Range", "V3MatchSwitch"]
    assert reports["mixed_pack"].success
    assert reports["mixed_pack"].nodes == ["MixedV3Upper", "MixedV1Marker"]
    assert "Input ids must be unique" in reports["mixed_pack"].node_errors["MixedBadSchema"]
    assert "MixedBadSchema" not in registry
    info = registry.node_info("MixedV3Upper")
    assert info["display_name"] == "Upper (mixed)"
    assert info["python_module"] == "custom_nodes.mixed_pack"
    assert info["input"]["required"]["text"] == ("STRING", {"default": "a", "multiline": False})


def test_a_pack_calling_sys_exit_is_reported_not_fatal(registry):
    reports = {r.name: r for r in registry.custom_node_reports}
    assert not reports["exiting_pack"].success
    assert "missing requirements" in reports["exiting_pack"].error


def test_pyproject_web_folder_and_prestartup_script(registry):
    assert (registry.web_directories["mixed_pack"] / "mixed.js").is_file()
    assert registry.get("MixedV1Marker")().run() == ("ran",)


def test_nodes_added_through_the_nodes_module_are_registered(registry):
    assert registry.get("MixedLate")().run() == (1,)


async def test_v3_list_inputs_and_outputs_run(registry):
    engine = Engine(registry)
    prompt = {"1": {"class_type": "V3Range", "inputs": {"n": 4}},
              "2": {"class_type": "V3SumList", "inputs": {"values": ["1", 0]}},
              "3": {"class_type": "PreviewAny", "inputs": {"source": ["2", 0]}},
              "4": {"class_type": "PreviewAny", "inputs": {"source": ["2", 1]}}}
    validation = await engine.validate(prompt)
    assert validation.ok, validation.node_errors
    result = await engine.run(prompt, prompt_id="p", execute_outputs=validation.outputs)
    assert result.status == "success", result.error
    assert result.outputs["3"]["text"] == ["6"]  # 0+1+2+3 in one call
    assert result.outputs["4"]["text"] == ["2:4"]  # hidden unique_id and prompt reached the clone


async def test_match_type_nodes_describe_and_run(registry):
    info = registry.node_info("V3MatchSwitch")
    assert info["output"] == ["COMFY_MATCHTYPE_V3"] and info["output_name"] == ["output"]
    assert info["output_matchtypes"] == ["switch"]
    assert info["input"]["required"]["on_true"] == (
        "COMFY_MATCHTYPE_V3", {"template": {"template_id": "switch", "allowed_types": "*"}})
    engine = Engine(registry)
    prompt = {"1": {"class_type": "PrimitiveInt", "inputs": {"value": 3}},
              "2": {"class_type": "PrimitiveInt", "inputs": {"value": 5}},
              "3": {"class_type": "V3MatchSwitch",
                    "inputs": {"switch": False, "on_true": ["1", 0], "on_false": ["2", 0]}},
              "4": {"class_type": "EmptyImage", "inputs": {"width": ["3", 0], "height": 2,
                                                           "batch_size": 1, "color": 0}},
              "5": {"class_type": "GetImageSize", "inputs": {"image": ["4", 0]}},
              "6": {"class_type": "PreviewAny", "inputs": {"source": ["5", 0]}}}
    validation = await engine.validate(prompt)
    assert validation.ok, validation.node_errors
    result = await engine.run(prompt, prompt_id="p", execute_outputs=validation.outputs)
    assert result.status == "success", result.error
    assert result.outputs["6"]["text"] == ["5"]
