"""CreateBoundingBoxes called directly: canvas boxes to pixel boxes and 0..1000 layout
elements, upstream values (boxes, elements, JSON) taking over only when they change, the
preview picture, and bad input."""

from __future__ import annotations

import json

import pytest
import torch

from opencomfy.nodes.bounding_boxes import CreateBoundingBoxes, normalise_colour
from tests.nodes.conftest import run_node

CANVAS = [
    {"x": 0, "y": 0, "width": 512, "height": 256,
     "metadata": {"type": "text", "text": "SALE", "desc": "bold title", "palette": ["#FFF", "nope"]}},
    {"x": 512, "y": 1024, "width": -256, "height": -512,  # drawn up and left
     "metadata": {"type": "obj", "text": "ignored", "desc": "a duck", "palette": []}},
]


def _run(**inputs):
    out = run_node(CreateBoundingBoxes, **{"width": 1024, "height": 1024, **inputs})
    return out["ui"], out["result"]


def test_canvas_boxes_become_pixel_boxes_and_layout_elements():
    ui, (preview, bboxes, elements) = _run(editor_state=CANVAS)
    assert ui == {"dims": [1024, 1024]}
    assert bboxes == [[{"x": 0, "y": 0, "width": 512, "height": 256},
                       {"x": 256, "y": 512, "width": 256, "height": 512}]]
    assert elements == [
        {"type": "text", "bbox": [0, 0, 250, 500], "text": "SALE", "desc": "bold title",
         "color_palette": ["#ffffff"]},
        {"type": "obj", "bbox": [500, 250, 1000, 500], "desc": "a duck"},
    ]
    assert preview.shape == (1, 1024, 1024, 3) and preview.dtype == torch.float32
    assert preview[0, 300, 900].tolist() == pytest.approx([32 / 255] * 3)  # dark, no box there
    assert preview[0, 0, 100].min() > 0.9  # the white palette strip of the first box


def test_preview_keeps_the_aspect_within_1024_and_dims_the_background():
    background = torch.ones(1, 64, 128, 3)
    _, (preview, bboxes, elements) = _run(width=2048, height=1024, editor_state=[],
                                          background=background)
    assert preview.shape == (1, 512, 1024, 3) and bboxes == [] and elements == []
    assert preview.max() == pytest.approx(0.25, abs=0.01)


def test_an_upstream_value_takes_over_only_when_it_changed():
    upstream = [{"type": "obj", "bbox": [100, 200, 300, 400], "desc": "cat",
                 "color_palette": ["#00ff00"]}]
    ui, (_, bboxes, elements) = _run(editor_state=CANVAS, bboxes=upstream, last_incoming=[])
    box = {"x": 205, "y": 102, "width": 205, "height": 205,
           "metadata": {"type": "obj", "text": "", "desc": "cat", "palette": ["#00ff00"]}}
    assert ui["input_bboxes"] == [box] and bboxes == [[{k: box[k] for k in ("x", "y", "width", "height")}]]
    assert elements[0]["desc"] == "cat"
    # The canvas took it (last_incoming): its own edits win now.
    _, (_, _, elements) = _run(editor_state=CANVAS, bboxes=upstream, last_incoming=[box])
    assert [e["desc"] for e in elements] == ["bold title", "a duck"]


@pytest.mark.parametrize("upstream", [
    json.dumps([{"x": 10, "y": 20, "width": 30, "height": 40}]),
    [[{"x": 10, "y": 20, "width": 30, "height": 40}]],
    {"x": 10, "y": 20, "width": 30, "height": 40},
])
def test_upstream_boxes_in_every_accepted_form(upstream):
    _, (_, bboxes, elements) = _run(editor_state=[], bboxes=upstream)
    assert bboxes == [[{"x": 10, "y": 20, "width": 30, "height": 40}]]
    assert elements == [{"type": "obj", "bbox": [20, 10, 59, 39], "desc": ""}]


@pytest.mark.parametrize("upstream, message", [
    ("{not json", "not valid JSON"),
    (42, "not int"),
    ([{"bbox": [1, 2, 3]}], r"\[ymin, xmin, ymax, xmax\]"),
    ([{"bbox": ["a", 2, 3, 4]}], "four numbers"),
    ([{"x": 1}], "need x, y, width, height"),
    ([{"x": "1", "y": 0, "width": 1, "height": 1}], "'x' must be a number"),
    (["box"], "must be objects"),
])
def test_bad_upstream_values_are_clear_errors(upstream, message):
    with pytest.raises(ValueError, match=message):
        _run(editor_state=[], bboxes=upstream)


def test_colour_normalisation():
    assert normalise_colour("#AbC") == "#aabbcc" and normalise_colour("112233") == "#112233"
    assert normalise_colour("red") is None and normalise_colour(None) is None
