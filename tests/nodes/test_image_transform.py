"""Scaling, cropping, flipping, rotating, padding and stitching: exact values and shapes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from opencomfy.nodes.image_scaling import common_upscale, repeat_to_batch_size
from opencomfy.nodes.image_transform import (ImageCrop, ImageFlip, ImagePadForOutpaint,
                                             ImageRotate, ImageScale, ImageScaleBy,
                                             ImageScaleToTotalPixels, ImageStitch)
from tests.nodes.conftest import run_node


def ramp(batch=1, height=2, width=3, channels=3):
    """Distinct values everywhere, so any misplaced pixel shows."""
    n = batch * height * width * channels
    return (torch.arange(n, dtype=torch.float32) / n).reshape(batch, height, width, channels)


# --- common_upscale -----------------------------------------------------------------------

def test_common_upscale_nearest_doubles_every_pixel():
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    out = common_upscale(x, 4, 2, "nearest-exact", "disabled")
    assert out.tolist() == [[[[1.0, 1.0, 2.0, 2.0], [3.0, 3.0, 4.0, 4.0]]]]


def test_common_upscale_area_averages():
    x = torch.tensor([[[[1.0, 3.0, 5.0, 7.0]]]])
    assert common_upscale(x, 2, 1, "area", "disabled").tolist() == [[[[2.0, 6.0]]]]


def test_common_upscale_center_crop_keeps_the_middle():
    x = torch.arange(8, dtype=torch.float32).reshape(1, 1, 1, 8).repeat(1, 1, 2, 1)
    # 8x2 -> aspect 1:1 target: crop x = round((8 - 8 * (1 / 4)) / 2) = 3 -> columns 3, 4
    out = common_upscale(x, 2, 2, "nearest-exact", "center")
    assert out[0, 0, 0].tolist() == [3.0, 4.0]


def test_common_upscale_lanczos_goes_through_pillow():
    x = torch.rand(1, 3, 5, 7)
    out = common_upscale(x, 3, 2, "lanczos", "disabled")
    pixels = np.clip(255.0 * x[0].movedim(0, -1).numpy(), 0, 255).astype(np.uint8)
    expected = np.array(Image.fromarray(pixels).resize((3, 2), Image.Resampling.LANCZOS)) / 255.0
    assert torch.allclose(out[0].movedim(0, -1), torch.from_numpy(expected).float())


def test_common_upscale_bislerp_keeps_constant_vectors_and_shapes():
    x = torch.ones(2, 4, 3, 5) * torch.tensor([1.0, -2.0, 0.5, 3.0]).reshape(1, 4, 1, 1)
    out = common_upscale(x, 10, 6, "bislerp", "disabled")
    assert out.shape == (2, 4, 6, 10)
    assert torch.allclose(out, torch.ones(2, 4, 6, 10) * x[:, :, :1, :1])


def test_common_upscale_bislerp_slerps_direction_and_lerps_length():
    # columns (1, 0) and (0, 2); the middle of three output columns is halfway between them
    x = torch.tensor([[[[1.0, 0.0]], [[0.0, 2.0]]]])
    out = common_upscale(x, 3, 1, "bislerp", "disabled")
    half = 1.5 * (0.5 ** 0.5)  # unit vector at 45 degrees, length (1 + 2) / 2
    assert torch.allclose(out[0, :, 0, 1], torch.tensor([half, half]))
    assert torch.allclose(out[0, :, 0, 0], torch.tensor([1.0, 0.0]))
    assert torch.allclose(out[0, :, 0, 2], torch.tensor([0.0, 2.0]))


def test_common_upscale_bislerp_keeps_the_first_of_parallel_vectors():
    # ComfyUI's rule: nearly parallel neighbours give the left one unchanged
    x = torch.tensor([[[[1.0, 3.0]], [[0.0, 0.0]]]])
    assert common_upscale(x, 4, 1, "bislerp", "disabled")[0, 0, 0].tolist() == [1, 1, 1, 3]


def test_common_upscale_5d_video_latents_resize_every_frame():
    x = torch.rand(1, 4, 3, 2, 2)
    out = common_upscale(x, 4, 4, "nearest-exact", "disabled")
    assert out.shape == (1, 4, 3, 4, 4)
    assert torch.equal(out[:, :, 1, ::2, ::2], x[:, :, 1])


def test_repeat_to_batch_size():
    x = torch.arange(2.0).reshape(2, 1)
    assert repeat_to_batch_size(x, 5).flatten().tolist() == [0, 1, 0, 1, 0]
    assert repeat_to_batch_size(x, 1).flatten().tolist() == [0]


# --- scale nodes --------------------------------------------------------------------------

def test_image_scale_exact_size_and_aspect_from_zero_side():
    image = ramp(height=2, width=4)
    (out,) = run_node(ImageScale, image=image, upscale_method="nearest-exact", width=8, height=4,
                      crop="disabled")
    assert out.shape == (1, 4, 8, 3)
    assert torch.equal(out[:, ::2, ::2], image)
    (out,) = run_node(ImageScale, image=image, upscale_method="bilinear", width=0, height=3,
                      crop="disabled")
    assert out.shape == (1, 3, 6, 3)  # round(4 * 3 / 2)
    (same,) = run_node(ImageScale, image=image, upscale_method="area", width=0, height=0,
                       crop="center")
    assert same is image


def test_image_scale_by_and_total_pixels():
    image = ramp(height=4, width=6)
    (out,) = run_node(ImageScaleBy, image=image, upscale_method="area", scale_by=0.5)
    assert out.shape == (1, 2, 3, 3)
    assert torch.allclose(out[0, 0, 0], image[0, :2, :2].mean(dim=(0, 1)))
    (out,) = run_node(ImageScaleToTotalPixels, image=image, upscale_method="nearest-exact",
                      megapixels=0.01)
    # 0.01 MP = int(0.01 * 2^20) = 10485 pixels; scale sqrt(10485 / 24) = 20.9 -> 125 x 84
    assert out.shape == (1, 84, 125, 3)


# --- crop / flip / rotate -----------------------------------------------------------------

def test_image_crop_clamps_the_origin_inside():
    image = ramp(height=4, width=5)
    (out,) = run_node(ImageCrop, image=image, width=2, height=3, x=1, y=1)
    assert torch.equal(out, image[:, 1:4, 1:3])
    (out,) = run_node(ImageCrop, image=image, width=10, height=10, x=99, y=99)
    assert torch.equal(out, image[:, 3:, 4:])


def test_image_flip():
    image = ramp(height=2, width=3)
    (vertical,) = run_node(ImageFlip, image=image, flip_method="x-axis: vertically")
    assert torch.equal(vertical[0, 0], image[0, 1])
    (horizontal,) = run_node(ImageFlip, image=image, flip_method="y-axis: horizontally")
    assert torch.equal(horizontal[0, :, 0], image[0, :, 2])


def test_image_rotate_clockwise():
    image = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]).reshape(1, 3, 2, 1)
    (out,) = run_node(ImageRotate, image=image, rotation="90 degrees")
    assert out[0, ..., 0].tolist() == [[5.0, 3.0, 1.0], [6.0, 4.0, 2.0]]
    (out,) = run_node(ImageRotate, image=image, rotation="180 degrees")
    assert out[0, ..., 0].tolist() == [[6.0, 5.0], [4.0, 3.0], [2.0, 1.0]]
    (out,) = run_node(ImageRotate, image=image, rotation="270 degrees")
    assert out[0, ..., 0].tolist() == [[2.0, 4.0, 6.0], [1.0, 3.0, 5.0]]
    (out,) = run_node(ImageRotate, image=image, rotation="none")
    assert torch.equal(out, image)


# --- pad for outpaint ---------------------------------------------------------------------

def _reference_feather(height, width, feathering, top, bottom, left, right):
    """ComfyUI's per-pixel loop, written out plainly."""
    t = torch.zeros((height, width))
    for i in range(height):
        for j in range(width):
            dt = i if top else height
            db = height - i if bottom else height
            dl = j if left else width
            dr = width - j if right else width
            d = min(dt, db, dl, dr)
            if d < feathering:
                v = (feathering - d) / feathering
                t[i, j] = v * v
    return t


def test_pad_for_outpaint_image_and_mask_without_feathering():
    image = ramp(height=2, width=2)
    new, mask = run_node(ImagePadForOutpaint, image=image, left=1, top=0, right=2, bottom=1,
                         feathering=0)
    assert new.shape == (1, 3, 5, 3) and mask.shape == (1, 3, 5)
    assert torch.equal(new[:, 0:2, 1:3], image)
    assert (new[:, 2] == 0.5).all() and (new[:, :, 0] == 0.5).all()
    expected = torch.ones(3, 5)
    expected[0:2, 1:3] = 0
    assert torch.equal(mask[0], expected)


@pytest.mark.parametrize("sides", [(8, 0, 8, 0), (0, 8, 0, 8), (8, 8, 8, 8)])
def test_pad_for_outpaint_feathering_matches_comfyuis_loop(sides):
    left, top, right, bottom = sides
    image = torch.rand(1, 12, 10, 3)
    _, mask = run_node(ImagePadForOutpaint, image=image, left=left, top=top, right=right,
                       bottom=bottom, feathering=4)
    inner = mask[0, top:top + 12, left:left + 10]
    expected = _reference_feather(12, 10, 4, top != 0, bottom != 0, left != 0, right != 0)
    assert torch.equal(inner, expected)
    assert inner.max() == 1.0  # the row/column touching a padded side


def test_pad_for_outpaint_skips_feathering_when_too_wide():
    _, mask = run_node(ImagePadForOutpaint, image=torch.rand(1, 6, 6, 3), left=8, top=0,
                       right=0, bottom=0, feathering=3)
    assert not mask[0, :, 8:].any()


# --- stitch -------------------------------------------------------------------------------

def test_stitch_without_image2_returns_image1():
    image = ramp()
    (out,) = run_node(ImageStitch, image1=image, direction="right", match_image_size=True,
                      spacing_width=0, spacing_color="white")
    assert out is image


def test_stitch_directions_and_spacing():
    a = torch.zeros(1, 2, 2, 3)
    b = torch.ones(1, 2, 3, 3)
    (right,) = run_node(ImageStitch, image1=a, image2=b, direction="right", match_image_size=False,
                        spacing_width=2, spacing_color="red")
    assert right.shape == (1, 2, 7, 3)
    assert right[0, 0, :, 0].tolist() == [0, 0, 1, 1, 1, 1, 1]
    assert right[0, 0, 2].tolist() == [1.0, 0.0, 0.0]  # the red spacer
    (up,) = run_node(ImageStitch, image1=a, image2=b, direction="up", match_image_size=False,
                     spacing_width=1, spacing_color="black")
    # widths 2 and 3: a is centred with black padding; spacing 1 rounds up to 2
    assert up.shape == (1, 6, 3, 3)
    assert up[0, :2].eq(1).all() and up[0, 2:4].eq(0).all()
    assert up[0, 4:, 2].eq(0).all() and up[0, 4:, :2].eq(0).all()


def test_stitch_matches_size_with_lanczos_and_batch_and_alpha():
    a = torch.full((2, 4, 4, 4), 0.2)
    b = torch.full((1, 2, 4, 3), 0.6)
    (out,) = run_node(ImageStitch, image1=a, image2=b, direction="down", match_image_size=True,
                      spacing_width=0, spacing_color="white")
    # b is scaled to width 4 (height int(4 / 2) = 2), repeated to batch 2, given alpha 1
    assert out.shape == (2, 6, 4, 4)
    assert torch.allclose(out[1, 4:, :, :3], torch.full((2, 4, 3), 153 / 255))
    assert out[:, 4:, :, 3].eq(1).all()
