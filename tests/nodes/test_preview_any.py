"""PreviewAny: any value as text in the node's UI output."""

from __future__ import annotations

import pytest
import torch

from opencomfy.nodes import preview_any
from opencomfy.nodes.preview_any import PreviewAny


def preview(value):
    return PreviewAny().main(source=value)


@pytest.mark.parametrize("value,text", [
    ("hello\nworld", "hello\nworld"),
    (42, "42"),
    (0.5, "0.5"),
    (True, "True"),
    (None, "None"),
    ({"a": [1, 2.5, None]}, '{"a": [1, 2.5, null]}'),
    ([1, "x"], '[1, "x"]'),
])
def test_text_for_plain_values(value, text):
    assert preview(value) == {"ui": {"text": [text]}}


def test_tensors_and_other_objects_fall_back_to_str():
    tensor = torch.tensor([1.0, 2.0])
    assert preview(tensor) == {"ui": {"text": [str(tensor)]}}
    latent = {"samples": torch.zeros(1)}
    assert preview(latent)["ui"]["text"] == [str(latent)]


def test_an_object_that_cannot_be_printed():
    class Opaque:
        def __str__(self):
            raise RuntimeError("no")

    assert preview(Opaque())["ui"]["text"] == ["source exists, but could not be serialized."]


def test_declaration_matches_comfyui():
    (source_type, options) = PreviewAny.INPUT_TYPES()["required"]["source"]
    assert source_type == "*" and options == {}
    assert not (source_type != "IMAGE")  # the any-type matches every link type
    assert PreviewAny.OUTPUT_NODE is True
    assert PreviewAny.RETURN_TYPES == ()
    assert PreviewAny.CATEGORY == "utils"
    assert preview_any.NODES == [("PreviewAny", PreviewAny, "Preview Any",
                                  "comfy_extras.nodes_preview_any")]
