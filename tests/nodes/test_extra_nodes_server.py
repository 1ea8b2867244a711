"""The extra image, mask, latent, logic and text nodes in graphs behind a running server.

One server for the module; each test runs one graph per node module and checks what came
back in the job's history (or, for bad input, the node error there and that the worker
still takes the next job).
"""

from __future__ import annotations

import json

import pytest
from PIL import Image

from opencomfy.compat.safetensors_file import load_file
from tests.harness import Server


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    server = Server(base_dir=tmp_path_factory.mktemp("extra-nodes")).start()
    yield server
    server.stop()


def _submit(srv, prompt: dict) -> dict:
    response = srv.post("/prompt", {"prompt": prompt})
    assert response.status == 200, response.body
    return srv.wait_for_job(response.json()["prompt_id"])


def _run(srv, prompt: dict) -> dict:
    entry = _submit(srv, prompt)
    assert entry["status"]["status_str"] == "success", entry["status"]
    return entry["outputs"]


def _text(outputs, node_id):
    return outputs[node_id]["text"][0]


def _error_message(entry) -> str:
    (error,) = [data for kind, data in entry["status"]["messages"] if kind == "execution_error"]
    return error["exception_message"]


def test_logic_graph_switch_math_and_lazy_branch(srv):
    outputs = _run(srv, {
        "1": {"class_type": "PrimitiveInt", "inputs": {"value": 3}},
        "2": {"class_type": "ComfyMathExpression",
              "inputs": {"expression": "a * b + 1", "values.a": ["1", 0], "values.b": 2.5}},
        "3": {"class_type": "PreviewAny", "inputs": {"source": ["2", 0]}},
        # The false branch would fail; the switch never asks for it.
        "4": {"class_type": "ComfyMathExpression", "inputs": {"expression": "1/0", "values.a": 1}},
        "5": {"class_type": "ComfySwitchNode",
              "inputs": {"switch": ["2", 2], "on_true": ["6", 0], "on_false": ["4", 0]}},
        "6": {"class_type": "CustomCombo", "inputs": {"choice": "Turbo", "index": 2}},
        "7": {"class_type": "PreviewAny", "inputs": {"source": ["5", 0]}},
        "8": {"class_type": "ResolutionSelector",
              "inputs": {"aspect_ratio": "1:1 (Square)", "megapixels": 1.0, "multiple": 8}},
        "9": {"class_type": "ComfyNumberConvert", "inputs": {"value": ["8", 0]}},
        "10": {"class_type": "PreviewAny", "inputs": {"source": ["9", 0]}},
        "11": {"class_type": "ColorToRGBInt", "inputs": {"color": "#000102"}},
        "12": {"class_type": "SeedNode", "inputs": {"seed": ["11", 0]}},
        "13": {"class_type": "PreviewAny", "inputs": {"source": ["12", 0]}},
    })
    assert _text(outputs, "3") == "8.5"
    assert _text(outputs, "7") == "Turbo"
    assert _text(outputs, "10") == "1024.0"
    assert _text(outputs, "13") == "258"


@pytest.mark.parametrize("expression, fragment", [
    ("a.__class__", "Attribute is not allowed"),
    ("9**9**9", "exponent"),
    ("[x for x in values]", "ListComp is not allowed"),
])
def test_bad_math_expression_is_a_node_error_and_the_worker_goes_on(srv, expression, fragment):
    entry = _submit(srv, {
        "1": {"class_type": "ComfyMathExpression", "inputs": {"expression": expression,
                                                              "values.a": 2}},
        "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}},
    })
    assert entry["status"]["status_str"] == "error"
    assert fragment in _error_message(entry)
    outputs = _run(srv, {
        "1": {"class_type": "ComfyMathExpression", "inputs": {"expression": "a + 1",
                                                              "values.a": 2}},
        "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 1]}},
    })
    assert _text(outputs, "2") == "3"


def test_text_graph_extracts_json_and_saves_it(srv):
    outputs = _run(srv, {
        "1": {"class_type": "PrimitiveStringMultiline",
              "inputs": {"value": 'Reply: {"scene": {"sky": "blue"}, "mood": "calm"} thanks'}},
        "2": {"class_type": "JsonExtractString", "inputs": {"json_string": ["1", 0], "key": "scene"}},
        "3": {"class_type": "SaveText", "inputs": {"text": ["2", 0], "filename_prefix": "t/scene",
                                                  "format": "json"}},
    })
    (saved,) = outputs["3"]["files"]
    assert outputs["3"]["text"] == ['{"sky": "blue"}']
    path = srv.base_dir / "output" / "t" / saved["filename"]
    assert json.loads(path.read_text()) == {"sky": "blue"}


def test_bad_json_key_gives_empty_text_and_bad_color_a_node_error(srv):
    outputs = _run(srv, {
        "1": {"class_type": "JsonExtractString", "inputs": {"json_string": "{not json",
                                                            "key": "x"}},
        "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}},
    })
    assert _text(outputs, "2") == ""
    entry = _submit(srv, {
        "1": {"class_type": "ColorToRGBInt", "inputs": {"color": "not a colour"}},
        "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}},
    })
    assert "#RRGGBB" in _error_message(entry)


def test_latent_graph_empty_latents_operations_and_cut(srv):
    outputs = _run(srv, {
        "1": {"class_type": "EmptyHunyuanLatentVideo",
              "inputs": {"width": 32, "height": 16, "length": 9, "batch_size": 1}},
        "2": {"class_type": "LatentCutToBatch", "inputs": {"samples": ["1", 0], "dim": "t",
                                                          "slice_size": 1}},
        "3": {"class_type": "LatentOperationTonemapReinhard", "inputs": {"multiplier": 1.0}},
        "4": {"class_type": "LatentApplyOperation", "inputs": {"samples": ["2", 0],
                                                              "operation": ["3", 0]}},
        "5": {"class_type": "SaveLatent", "inputs": {"samples": ["4", 0],
                                                    "filename_prefix": "lat/cut"}},
        "6": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 64, "height": 64,
                                                             "batch_size": 1}},
        "7": {"class_type": "SaveLatent", "inputs": {"samples": ["6", 0],
                                                    "filename_prefix": "lat/sd3"}},
    })
    shapes = []
    for node_id in ("5", "7"):
        (latent,) = outputs[node_id]["latents"]
        tensors, _ = load_file(srv.base_dir / "output" / "lat" / latent["filename"])
        shapes.append(tuple(tensors["latent_tensor"].shape))
    # 9 frames are 3 latent frames, cut into a batch of 3 one-frame latents.
    assert shapes == [(3, 16, 1, 2, 4), (1, 16, 8, 8)]


def test_image_graph_canny_morphology_resize_batch_and_save(srv):
    outputs = _run(srv, {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 32, "height": 16, "batch_size": 1,
                                                     "color": 0xFFFFFF}},
        "2": {"class_type": "ResizeAndPadImage",
              "inputs": {"image": ["1", 0], "target_width": 32, "target_height": 32,
                         "padding_color": "black", "interpolation": "bilinear"}},
        "3": {"class_type": "Canny", "inputs": {"image": ["2", 0], "low_threshold": 0.2,
                                                "high_threshold": 0.5}},
        "4": {"class_type": "Morphology", "inputs": {"image": ["3", 0], "operation": "dilate",
                                                     "kernel_size": 3}},
        "5": {"class_type": "ResizeImageMaskNode",
              "inputs": {"input": ["4", 0], "resize_type": "scale by",
                         "resize_type.multiplier": 0.5, "scale_method": "area"}},
        "6": {"class_type": "ImageScaleToMaxDimension",
              "inputs": {"image": ["2", 0], "upscale_method": "area", "largest_size": 16}},
        "7": {"class_type": "BatchImagesNode",
              "inputs": {"images.image0": ["5", 0], "images.image1": ["6", 0]}},
        "8": {"class_type": "ImageAddNoise", "inputs": {"image": ["7", 0], "seed": 1,
                                                        "strength": 0.0}},
        "9": {"class_type": "SaveImageAdvanced",
              "inputs": {"images": ["8", 0], "filename_prefix": "adv/edges", "format": "png",
                         "format.bit_depth": "8-bit", "format.input_color_space": "sRGB"}},
        "10": {"class_type": "GetImageSize", "inputs": {"image": ["9", 0]}},
        "11": {"class_type": "PreviewAny", "inputs": {"source": ["10", 2]}},
        "12": {"class_type": "ImageCompare", "inputs": {"image_a": ["2", 0], "image_b": ["4", 0]}},
        "13": {"class_type": "ImageRGBToYUV", "inputs": {"image": ["2", 0]}},
        "14": {"class_type": "ImageYUVToRGB", "inputs": {"Y": ["13", 0], "U": ["13", 1],
                                                        "V": ["13", 2]}},
        "15": {"class_type": "SaveImage", "inputs": {"images": ["14", 0],
                                                     "filename_prefix": "yuv/x"}},
    })
    assert _text(outputs, "11") == "2"
    assert len(outputs["9"]["images"]) == 2
    assert all(e["type"] == "output" for e in outputs["9"]["images"])
    assert len(outputs["12"]["a_images"]) == 1 and len(outputs["12"]["b_images"]) == 1
    (yuv,) = outputs["15"]["images"]
    picture = Image.open(srv.base_dir / "output" / "yuv" / yuv["filename"]).convert("RGB")
    assert picture.getpixel((16, 16))[0] >= 250 and picture.getpixel((16, 1))[0] <= 5


def test_mask_graph_porter_duff_preview_and_crop(srv):
    outputs = _run(srv, {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 16, "height": 16, "batch_size": 1,
                                                     "color": 0xFF0000}},
        "2": {"class_type": "EmptyImage", "inputs": {"width": 16, "height": 16, "batch_size": 1,
                                                     "color": 0x0000FF}},
        "3": {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": 16, "height": 16}},
        "4": {"class_type": "SolidMask", "inputs": {"value": 0.0, "width": 16, "height": 16}},
        "5": {"class_type": "PorterDuffImageComposite",
              "inputs": {"source": ["1", 0], "source_alpha": ["4", 0], "destination": ["2", 0],
                         "destination_alpha": ["3", 0], "mode": "SRC_OVER"}},
        "6": {"class_type": "MaskPreview", "inputs": {"mask": ["5", 1]}},
        "7": {"class_type": "ImageCropToMask",
              "inputs": {"images": ["5", 0], "masks": ["3", 0], "width": 64, "height": 64,
                         "pad_factor": 1.0, "grow_mask": 0, "background": "#000000"}},
        "8": {"class_type": "SaveImage", "inputs": {"images": ["7", 0], "filename_prefix": "pd/x"}},
        "9": {"class_type": "Painter", "inputs": {"image": ["1", 0], "mask": "", "width": 64,
                                                  "height": 64, "bg_color": "#000000"}},
        "10": {"class_type": "PreviewImage", "inputs": {"images": ["9", 0]}},
    })
    (preview,) = outputs["6"]["images"]
    assert preview["type"] == "temp"
    (saved,) = outputs["8"]["images"]
    picture = Image.open(srv.base_dir / "output" / "pd" / saved["filename"]).convert("RGB")
    # Colours count as premultiplied (as in ComfyUI): a transparent red source still adds.
    assert picture.size == (64, 64) and picture.getpixel((32, 32)) == (255, 0, 255)
    assert len(outputs["10"]["images"]) == 1
