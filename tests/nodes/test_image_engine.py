"""Image nodes run through the real engine: validation, hidden inputs, caching by file hash."""

from __future__ import annotations

import json

from PIL import Image

from opencomfy.engine import Engine, NodeRegistry
from opencomfy.engine.events import RecordingSink
from opencomfy.nodes import register_core_nodes


def _engine() -> Engine:
    registry = NodeRegistry()
    register_core_nodes(registry)
    return Engine(registry)


def _prompt(image_name: str) -> dict:
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": image_name}},
        "2": {"class_type": "ImageScaleBy", "inputs": {"image": ["1", 0], "upscale_method": "nearest-exact",
                                                       "scale_by": 2.0}},
        "3": {"class_type": "GetImageSize", "inputs": {"image": ["2", 0]}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "e2e/out"}},
        # the sizes drive an EmptyImage, so GetImageSize is needed by an output and runs
        "5": {"class_type": "EmptyImage", "inputs": {"width": ["3", 0], "height": ["3", 1],
                                                     "batch_size": ["3", 2], "color": 0}},
        "6": {"class_type": "PreviewImage", "inputs": {"images": ["5", 0]}},
    }


async def test_load_scale_save_through_the_engine(comfy_dirs):
    Image.new("RGB", (3, 2), (255, 0, 0)).save(comfy_dirs / "input" / "red.png")
    engine = _engine()
    prompt = _prompt("red.png")
    check = await engine.validate(prompt)
    assert check.ok, check.node_errors
    sink = RecordingSink()
    result = await engine.run(prompt, prompt_id="p1", extra_data={"extra_pnginfo": {"workflow": {"w": 1}}},
                              execute_outputs=check.outputs, sink=sink)
    assert result.status == "success", result.error
    assert result.outputs["4"] == {"images": [{"filename": "out_00001_.png", "subfolder": "e2e",
                                               "type": "output"}]}
    with Image.open(comfy_dirs / "output" / "e2e" / "out_00001_.png") as img:
        assert img.size == (6, 4)
        assert img.getpixel((5, 3)) == (255, 0, 0)
        assert json.loads(img.text["prompt"])["4"]["class_type"] == "SaveImage"
        assert json.loads(img.text["workflow"]) == {"w": 1}
    assert ("3", "width: 6, height: 4\n batch size: 1") in sink.texts
    preview = result.outputs["6"]["images"][0]
    with Image.open(comfy_dirs / "temp" / preview["filename"]) as img:
        assert preview["type"] == "temp" and img.size == (6, 4)


async def test_unchanged_file_is_cached_and_a_changed_one_reruns(comfy_dirs):
    path = comfy_dirs / "input" / "c.png"
    Image.new("RGB", (1, 1), (0, 0, 0)).save(path)
    engine = _engine()
    first = await engine.run(_prompt("c.png"), prompt_id="a", sink=RecordingSink())
    sink = RecordingSink()
    await engine.run(_prompt("c.png"), prompt_id="b", sink=sink)
    assert "1" in sink.of_type("execution_cached")[0]["nodes"]
    Image.new("RGB", (1, 1), (9, 9, 9)).save(path)
    sink = RecordingSink()
    await engine.run(_prompt("c.png"), prompt_id="c", sink=sink)
    assert "1" in sink.executed_nodes()
    assert first.status == "success"


async def test_missing_or_escaping_image_fails_validation(comfy_dirs):
    engine = _engine()
    for name in ("missing.png", "../secret.png"):
        check = await engine.validate(_prompt(name))
        assert not check.ok
        errors = check.node_errors["1"]["errors"]
        assert errors[0]["type"] == "custom_validation_failed"
        assert f"Invalid image file: {name}" in errors[0]["details"]


async def test_annotated_output_image_passes_validation(comfy_dirs):
    Image.new("RGB", (1, 1)).save(comfy_dirs / "output" / "prev.png")
    check = await _engine().validate(_prompt("prev.png [output]"))
    assert check.ok, check.node_errors
