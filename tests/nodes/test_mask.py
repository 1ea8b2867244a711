"""Mask nodes: exact values, shapes and ComfyUI's declarations."""

from __future__ import annotations

import json

import pytest
import torch

from opencomfy.nodes import mask as mask_nodes
from opencomfy.nodes.mask import (CropMask, FeatherMask, GrowMask, ImageColorToMask,
                                  ImageToMask, InvertMask, MaskComposite, MaskToImage,
                                  SolidMask, ThresholdMask)


def run(cls, **inputs):
    node = cls()
    return getattr(node, cls.FUNCTION)(**inputs)


def test_mask_to_image_repeats_the_mask_in_three_channels():
    mask = torch.tensor([[[0.0, 0.25], [0.5, 1.0]]])
    (image,) = run(MaskToImage, mask=mask)
    assert image.shape == (1, 2, 2, 3)
    for channel in range(3):
        assert torch.equal(image[..., channel], mask)


def test_mask_to_image_accepts_a_2d_mask():
    (image,) = run(MaskToImage, mask=torch.ones(3, 5))
    assert image.shape == (1, 3, 5, 3)


@pytest.mark.parametrize("channel,index", [("red", 0), ("green", 1), ("blue", 2), ("alpha", 3)])
def test_image_to_mask_takes_one_channel(channel, index):
    image = torch.rand(2, 3, 4, 4)
    (mask,) = run(ImageToMask, image=image, channel=channel)
    assert mask.shape == (2, 3, 4)
    assert torch.equal(mask, image[..., index])


def test_image_color_to_mask_matches_rounded_8bit_rgb():
    image = torch.zeros(1, 1, 3, 3)
    image[0, 0, 0] = torch.tensor([1.0, 0.5, 0.0])         # 255, 127.5 -> 128, 0
    image[0, 0, 1] = torch.tensor([1.0, 0.498, 0.0])       # 255, 127, 0
    image[0, 0, 2] = torch.tensor([1.2, 0.5, -0.1])        # clamped first: 255, 128, 0
    (mask,) = run(ImageColorToMask, image=image, color=0xFF8000)
    assert mask.dtype == torch.float32
    assert mask.tolist() == [[[1.0, 0.0, 1.0]]]


def test_solid_mask_is_one_by_height_by_width():
    (mask,) = run(SolidMask, value=0.25, width=3, height=2)
    assert mask.shape == (1, 2, 3)
    assert mask.dtype == torch.float32
    assert torch.all(mask == 0.25)


def test_invert_mask():
    (mask,) = run(InvertMask, mask=torch.tensor([[0.0, 0.25, 1.0]]))
    assert mask.tolist() == [[1.0, 0.75, 0.0]]


def test_crop_mask_cuts_the_window_and_clips_at_the_edge():
    mask = torch.arange(20.0).reshape(1, 4, 5)
    (out,) = run(CropMask, mask=mask, x=1, y=2, width=2, height=1)
    assert out.tolist() == [[[11.0, 12.0]]]
    (out,) = run(CropMask, mask=mask[0], x=3, y=1, width=512, height=512)  # 2-D input
    assert out.shape == (1, 3, 2)
    assert out[0, 0].tolist() == [8.0, 9.0]


DST = torch.tensor([[[0.2, 0.6, 1.0, 0.0]]])
SRC = torch.tensor([[[0.5, 0.5, 0.7, 0.3]]])


@pytest.mark.parametrize("operation,expected", [
    ("multiply", [0.1, 0.3, 0.7, 0.0]),
    ("add", [0.7, 1.0, 1.0, 0.3]),             # clamped to 1
    ("subtract", [0.0, 0.1, 0.3, 0.0]),        # clamped to 0
    # logical ops round first: dst -> 0,1,1,0 ; src -> 0 (0.5 rounds to even),0,1,0
    ("and", [0.0, 0.0, 1.0, 0.0]),
    ("or", [0.0, 1.0, 1.0, 0.0]),
    ("xor", [0.0, 1.0, 0.0, 0.0]),
])
def test_mask_composite_operations(operation, expected):
    (out,) = run(MaskComposite, destination=DST, source=SRC, x=0, y=0, operation=operation)
    assert out.shape == (1, 1, 4)
    assert out[0, 0].tolist() == pytest.approx(expected)


def test_mask_composite_places_the_source_at_the_offset_and_clips_it():
    destination = torch.zeros(1, 3, 4)
    source = torch.ones(1, 2, 3)
    (out,) = run(MaskComposite, destination=destination, source=source, x=2, y=2,
                 operation="add")
    expected = torch.zeros(1, 3, 4)
    expected[0, 2, 2:4] = 1.0
    assert torch.equal(out, expected)
    assert torch.equal(destination, torch.zeros(1, 3, 4))  # input untouched


def test_mask_composite_with_the_source_outside_changes_nothing():
    destination = torch.full((1, 2, 2), 0.5)
    (out,) = run(MaskComposite, destination=destination, source=torch.ones(1, 2, 2),
                 x=5, y=0, operation="add")
    assert torch.equal(out, destination)


def test_feather_mask_left_and_top_ramps():
    (out,) = run(FeatherMask, mask=torch.ones(1, 6, 8), left=4, top=2, right=0, bottom=0)
    assert out[0, 5, :5].tolist() == [0.25, 0.5, 0.75, 1.0, 1.0]
    assert out[0, :3, 7].tolist() == [0.5, 1.0, 1.0]
    assert out[0, 0, 0].item() == pytest.approx(0.125)  # both ramps multiply


def test_feather_mask_right_and_bottom_ramps_keep_comfyuis_off_by_one():
    # ComfyUI indexes -i for step i: step 0 hits the first column, the last gets 2/n.
    (out,) = run(FeatherMask, mask=torch.ones(1, 5, 8), left=0, top=0, right=4, bottom=0)
    assert out[0, 2].tolist() == [0.25, 1.0, 1.0, 1.0, 1.0, 1.0, 0.75, 0.5]
    (out,) = run(FeatherMask, mask=torch.ones(1, 5, 3), left=0, top=0, right=0, bottom=2)
    assert out[0, :, 1].tolist() == [0.5, 1.0, 1.0, 1.0, 1.0]


def test_feather_mask_clamps_widths_to_the_mask():
    (out,) = run(FeatherMask, mask=torch.ones(2, 2), left=10, top=0, right=0, bottom=0)
    assert out.shape == (1, 2, 2)
    assert out[0, 0].tolist() == [0.5, 1.0]


def _point_mask(size=9):
    mask = torch.zeros(1, size, size)
    mask[0, size // 2, size // 2] = 1.0
    return mask


def _distance_grid(size=9):
    ys, xs = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    return (ys - size // 2).abs(), (xs - size // 2).abs()


def test_grow_mask_tapered_grows_a_diamond_by_n_pixels():
    (out,) = run(GrowMask, mask=_point_mask(), expand=3, tapered_corners=True)
    dy, dx = _distance_grid()
    assert torch.equal(out[0], ((dy + dx) <= 3).float())


def test_grow_mask_square_corners_grow_a_square():
    (out,) = run(GrowMask, mask=_point_mask(), expand=2, tapered_corners=False)
    dy, dx = _distance_grid()
    assert torch.equal(out[0], (torch.maximum(dy, dx) <= 2).float())


def test_grow_mask_negative_erodes_and_keeps_edge_pixels():
    mask = torch.zeros(1, 7, 7)
    mask[0, 1:6, 1:6] = 1.0
    (out,) = run(GrowMask, mask=mask, expand=-1, tapered_corners=True)
    expected = torch.zeros(1, 7, 7)
    expected[0, 2:5, 2:5] = 1.0
    assert torch.equal(out, expected)
    # The border is reflected, so a full mask does not erode from its edges.
    (out,) = run(GrowMask, mask=torch.ones(2, 4, 4), expand=-2, tapered_corners=False)
    assert torch.equal(out, torch.ones(2, 4, 4))


def test_grow_mask_works_on_grey_values_and_zero_is_identity():
    mask = torch.tensor([[[0.0, 0.25, 0.0, 0.0]]])
    (out,) = run(GrowMask, mask=mask, expand=1, tapered_corners=True)
    assert out.tolist() == [[[0.25, 0.25, 0.25, 0.0]]]
    (out,) = run(GrowMask, mask=mask, expand=0, tapered_corners=True)
    assert torch.equal(out, mask)


def test_threshold_mask_is_strictly_greater():
    (out,) = run(ThresholdMask, mask=torch.tensor([[0.2, 0.5, 0.51]]), value=0.5)
    assert out.tolist() == [[0.0, 0.0, 1.0]]


def test_declarations_match_comfyui():
    grow = GrowMask.INPUT_TYPES()["required"]
    assert grow["expand"] == ("INT", {"default": 0, "min": -16384, "max": 16384, "step": 1})
    assert grow["tapered_corners"] == ("BOOLEAN", {"default": True})
    color = ImageColorToMask.INPUT_TYPES()["required"]["color"]
    assert color == ("INT", {"default": 0, "min": 0, "max": 16777215, "step": 1,
                             "display": "color"})
    assert ImageToMask.INPUT_TYPES()["required"]["channel"] == (
        ["red", "green", "blue", "alpha"],)
    assert MaskComposite.INPUT_TYPES()["required"]["operation"] == (
        ["multiply", "add", "subtract", "and", "or", "xor"],)
    names = {entry[0]: entry for entry in mask_nodes.NODES}
    assert names["MaskToImage"][2] == "Convert Mask to Image"
    assert names["ImageToMask"][2] == "Convert Image to Mask"
    assert {entry[3] for entry in mask_nodes.NODES} == {"comfy_extras.nodes_mask"}
    for _, cls, _, _ in mask_nodes.NODES:
        assert cls.CATEGORY == "mask"
        json.dumps(cls.INPUT_TYPES())
