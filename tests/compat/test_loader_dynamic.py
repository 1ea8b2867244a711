"""io.Autogrow / io.DynamicSlot / io.DynamicCombo: the same object_info as the core nodes'
hand-written descriptions (nodes/v3_dynamic.py), the engine's flat inputs, and the nested
values execute receives."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from opencomfy.compat.comfy_api.latest import io
from opencomfy.compat.comfy_api.latest._io_dynamic import engine_inputs, nest_inputs
from opencomfy.nodes.v3_dynamic import autogrow_names, autogrow_prefix
from tests.compat.conftest import build

PACKS = Path(__file__).parent / "packs_loader"


def _described(item) -> tuple:
    d: dict = {}
    io.add_to_dict_v1(item, d)
    return next(iter(next(iter(d.values())).values()))


def test_autogrow_describes_as_the_core_math_expression_and_batch_images():
    values = io.Autogrow.Input("values", template=io.Autogrow.TemplateNames(
        io.MultiType.Input("value", types=[io.Float, io.Int], optional=True),
        names=list("abcdefghijklmnopqrstuvwxyz"), min=1))
    assert _described(values) == autogrow_names(
        "value", "FLOAT,INT", list("abcdefghijklmnopqrstuvwxyz"), min_count=1)
    images = io.Autogrow.Input("images", template=io.Autogrow.TemplatePrefix(
        io.Image.Input("image"), prefix="image", min=2, max=50))
    assert _described(images) == autogrow_prefix("image", "IMAGE", "image", min_count=2,
                                                 max_count=50)


def _flat(item) -> dict:
    out: dict = {"required": {}, "optional": {}}
    io_type, options = _described(item)
    engine_inputs(item.id, io_type, options, required=not item.optional, out=out,
                  engine_type=lambda t: t)
    return out


def test_engine_inputs_are_one_per_path():
    grow = io.Autogrow.Input("v", template=io.Autogrow.TemplatePrefix(
        io.Int.Input("n"), prefix="n", min=1, max=3))
    assert _flat(grow) == {"required": {"v.n0": ("INT", {"forceInput": True})},
                           "optional": {"v.n1": ("INT", {"forceInput": True}),
                                        "v.n2": ("INT", {"forceInput": True})}}
    combo = io.DynamicCombo.Input("mode", options=[
        io.DynamicCombo.Option("one", [io.Int.Input("x", default=1)]),
        io.DynamicCombo.Option("many", [io.Autogrow.Input("vals", template=io.Autogrow.TemplateNames(
            io.Float.Input("f"), names=["p", "q"], min=1))])])
    flat = _flat(combo)
    assert flat["required"]["mode"][1]["options"] == ["one", "many"]
    # Inside an option nothing is required: the option may not be the chosen one.
    assert set(flat["optional"]) == {"mode.x", "mode.vals.p", "mode.vals.q"}


def test_nested_values_are_built_as_comfyui_builds_them():
    combo = io.DynamicCombo.Input("mode", options=[
        io.DynamicCombo.Option("one", [io.Int.Input("x")]),
        io.DynamicCombo.Option("many", [io.Autogrow.Input("vals", template=io.Autogrow.TemplateNames(
            io.Float.Input("f"), names=["p", "q"], min=1))])])
    slot = io.DynamicSlot.Input(slot=io.Model.Input("model"), inputs=[io.Float.Input("w")])
    plain = io.Int.Input("k")
    got = nest_inputs([combo, slot, plain], {"mode": "many", "mode.x": 5, "mode.vals.q": 2.0,
                                            "model": "M", "model.w": 0.5, "k": 1})
    assert got == {"mode": {"mode": "many", "vals": {"q": 2.0}},
                   "model": {"model": "M", "w": 0.5}, "k": 1}
    assert nest_inputs([slot], {"model.w": 0.5}) == {}


def test_entrypoint_on_load_runs_once_and_nodes_register(tmp_path):
    target = tmp_path / "custom_nodes" / "dynamic_pack"
    shutil.copytree(PACKS / "dynamic_pack", target, ignore=shutil.ignore_patterns("__pycache__"))
    registry = build(tmp_path)
    report = registry.custom_node_reports[0]
    assert report.success and report.nodes == ["AutogrowSum", "AutogrowCount", "SlotOffset",
                                               "MatchPass"]
    module = sys.modules[registry.get("AutogrowSum").V3_CLASS.__module__]
    assert module.LOADED == {"on_load": 1}
    engine_view = registry.get("AutogrowSum").INPUT_TYPES()
    assert set(engine_view["required"]) == {"values.a"}
    assert set(engine_view["optional"]) == {"values.b", "values.c"}
