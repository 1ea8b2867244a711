"""Basic, transform and composite latent nodes: exact positions and values."""

from __future__ import annotations

import json

import pytest
import torch

from opencomfy.nodes import latent as latent_nodes
from opencomfy.nodes.latent import EmptyLatentImage, SetLatentNoiseMask
from opencomfy.nodes.latent_composite import LatentBlend, LatentComposite, LatentCompositeMasked
from opencomfy.nodes.latent_transform import (LatentCrop, LatentFlip, LatentRotate,
                                              LatentUpscale, LatentUpscaleBy)


def run(cls, **inputs):
    return getattr(cls(), cls.FUNCTION)(**inputs)


def grid(height, width, batch=1, channels=1):
    """A latent whose values are their flat position: easy to follow through a transform."""
    count = batch * channels * height * width
    return {"samples": torch.arange(float(count)).reshape(batch, channels, height, width)}


def test_empty_latent_image_is_zero_at_an_eighth_of_the_size():
    (latent,) = run(EmptyLatentImage, width=768, height=512, batch_size=2)
    assert latent["samples"].shape == (2, 4, 64, 96)
    assert latent["samples"].dtype == torch.float32
    assert not latent["samples"].any()
    (latent,) = run(EmptyLatentImage, width=20, height=17, batch_size=1)  # floor division
    assert latent["samples"].shape == (1, 4, 2, 2)


def test_set_latent_noise_mask_reshapes_to_batch_one_h_w():
    source = {"samples": torch.zeros(1, 4, 2, 2), "batch_index": [3]}
    (latent,) = run(SetLatentNoiseMask, samples=source, mask=torch.ones(16, 16))
    assert latent["noise_mask"].shape == (1, 1, 16, 16)
    assert latent["batch_index"] == [3]
    assert "noise_mask" not in source


@pytest.mark.parametrize("rotation,expected", [
    ("none", [[0, 1, 2], [3, 4, 5]]),
    ("90 degrees", [[3, 0], [4, 1], [5, 2]]),        # clockwise
    ("180 degrees", [[5, 4, 3], [2, 1, 0]]),
    ("270 degrees", [[2, 5], [1, 4], [0, 3]]),
])
def test_latent_rotate(rotation, expected):
    (latent,) = run(LatentRotate, samples=grid(2, 3), rotation=rotation)
    assert latent["samples"][0, 0].tolist() == expected


def test_latent_flip():
    (latent,) = run(LatentFlip, samples=grid(2, 3), flip_method="x-axis: vertically")
    assert latent["samples"][0, 0].tolist() == [[3, 4, 5], [0, 1, 2]]
    (latent,) = run(LatentFlip, samples=grid(2, 3), flip_method="y-axis: horizontally")
    assert latent["samples"][0, 0].tolist() == [[2, 1, 0], [5, 4, 3]]


def test_latent_crop_takes_the_window_in_pixels():
    source = grid(16, 16)
    (latent,) = run(LatentCrop, samples=source, width=64, height=32, x=16, y=8)
    assert torch.equal(latent["samples"], source["samples"][:, :, 1:5, 2:10])


def test_latent_crop_keeps_the_origin_eight_latent_pixels_from_the_end():
    source = grid(16, 16)
    (latent,) = run(LatentCrop, samples=source, width=512, height=512, x=4000, y=120)
    # x -> 500 clamped to 16 - 8 = 8; y -> 15 clamped to 8; the window is then clipped.
    assert torch.equal(latent["samples"], source["samples"][:, :, 8:, 8:])


def test_latent_upscale_sizes():
    source = {"samples": torch.zeros(1, 4, 8, 16), "noise_mask": torch.ones(1, 1, 64, 128)}
    (latent,) = run(LatentUpscale, samples=source, upscale_method="nearest-exact",
                    width=256, height=0, crop="disabled")
    assert latent["samples"].shape == (1, 4, 16, 32)       # height follows the aspect ratio
    assert "noise_mask" in latent
    (latent,) = run(LatentUpscale, samples=source, upscale_method="bilinear", width=8,
                    height=100, crop="center")
    assert latent["samples"].shape == (1, 4, 12, 8)        # each side at least 64 px
    (latent,) = run(LatentUpscale, samples=source, upscale_method="area", width=0, height=0,
                    crop="disabled")
    assert latent is source


def test_latent_upscale_nearest_repeats_values():
    (latent,) = run(LatentUpscale, samples=grid(2, 3), upscale_method="nearest-exact",
                    width=96, height=64, crop="disabled")
    rows = latent["samples"][0, 0].tolist()
    assert rows == [[0] * 4 + [1] * 4 + [2] * 4] * 4 + [[3] * 4 + [4] * 4 + [5] * 4] * 4


def test_latent_upscale_by_rounds_each_side():
    (latent,) = run(LatentUpscaleBy, samples={"samples": torch.zeros(2, 4, 8, 5)},
                    upscale_method="bicubic", scale_by=1.5)
    assert latent["samples"].shape == (2, 4, 12, 8)        # 7.5 rounds to 8


def test_latent_composite_pastes_at_the_offset_and_clips():
    target = {"samples": torch.zeros(1, 1, 4, 4)}
    source = {"samples": torch.ones(1, 1, 3, 3)}
    (latent,) = run(LatentComposite, samples_to=target, samples_from=source, x=16, y=8,
                    feather=0)
    expected = torch.zeros(1, 1, 4, 4)
    expected[0, 0, 1:4, 2:4] = 1
    assert torch.equal(latent["samples"], expected)
    assert not target["samples"].any()


def test_latent_composite_feathers_only_inner_edges():
    target = {"samples": torch.zeros(1, 1, 6, 6)}
    source = {"samples": torch.ones(1, 1, 4, 4)}
    (latent,) = run(LatentComposite, samples_to=target, samples_from=source, x=8, y=0,
                    feather=16)
    out = latent["samples"][0, 0]
    # y == 0: the top edge touches the border and is not faded; the bottom (row 3) is.
    # Left edge (x != 0) ramps 0.5, 1; the right edge at column 4 < 6 ramps too.
    assert out[0].tolist() == [0, 0.5, 1, 1, 0.5, 0]
    assert out[2].tolist() == [0, 0.5, 1, 1, 0.5, 0]
    assert out[3].tolist() == [0, 0.25, 0.5, 0.5, 0.25, 0]
    assert out[4].tolist() == [0] * 6


def test_latent_composite_masked_weights_with_the_mask():
    destination = {"samples": torch.zeros(2, 4, 4, 4), "batch_index": [5, 6]}
    source = {"samples": torch.ones(1, 4, 2, 2)}
    mask = torch.tensor([[1.0, 0.0], [0.5, 0.25]])
    (latent,) = run(LatentCompositeMasked, destination=destination, source=source, x=8, y=16,
                    resize_source=False, mask=mask)
    out = latent["samples"]
    assert out.shape == (2, 4, 4, 4)
    assert latent["batch_index"] == [5, 6]
    for b in range(2):
        for c in range(4):
            assert out[b, c, 2:4, 1:3].tolist() == [[1.0, 0.0], [0.5, 0.25]]
    assert out.sum().item() == pytest.approx(2 * 4 * 1.75)


def test_latent_composite_masked_without_mask_clips_and_can_resize():
    destination = {"samples": torch.zeros(1, 1, 3, 3)}
    source = {"samples": torch.full((1, 1, 2, 2), 2.0)}
    (latent,) = run(LatentCompositeMasked, destination=destination, source=source, x=16, y=16,
                    resize_source=False)
    expected = torch.zeros(1, 1, 3, 3)
    expected[0, 0, 2, 2] = 2.0
    assert torch.equal(latent["samples"], expected)
    (latent,) = run(LatentCompositeMasked, destination=destination, source=source, x=0, y=0,
                    resize_source=True)
    assert torch.equal(latent["samples"], torch.full((1, 1, 3, 3), 2.0))


def test_latent_blend_weights_the_first_by_the_factor():
    first = {"samples": torch.full((1, 4, 2, 2), 4.0), "noise_mask": torch.ones(1, 1, 16, 16)}
    second = {"samples": torch.zeros(1, 4, 2, 2)}
    (latent,) = run(LatentBlend, samples1=first, samples2=second, blend_factor=0.25)
    assert torch.all(latent["samples"] == 1.0)
    assert "noise_mask" in latent
    (latent,) = run(LatentBlend, samples1=first, samples2={"samples": torch.ones(1, 4, 4, 4)},
                    blend_factor=0.5)
    assert latent["samples"].shape == (1, 4, 2, 2)
    assert latent["samples"].mean().item() == pytest.approx(2.5)


def test_every_latent_node_is_declared_as_comfyui_does():
    entries = {entry[0]: entry for entry in latent_nodes.NODES}
    expected_modules = {
        "EmptyLatentImage": "nodes", "LatentUpscale": "nodes", "LatentUpscaleBy": "nodes",
        "LatentComposite": "nodes", "LatentCompositeMasked": "comfy_extras.nodes_mask",
        "LatentBlend": "nodes", "LatentFromBatch": "nodes", "RepeatLatentBatch": "nodes",
        "RebatchLatents": "comfy_extras.nodes_rebatch", "LatentRotate": "nodes",
        "LatentFlip": "nodes", "LatentCrop": "nodes", "SetLatentNoiseMask": "nodes",
        "SaveLatent": "nodes", "LoadLatent": "nodes",
        "LatentAdd": "comfy_extras.nodes_latent", "LatentSubtract": "comfy_extras.nodes_latent",
        "LatentMultiply": "comfy_extras.nodes_latent",
        "LatentInterpolate": "comfy_extras.nodes_latent",
        "LatentBatch": "comfy_extras.nodes_latent",
    }
    for name, module in expected_modules.items():
        assert entries[name][3] == module, name
    assert entries["LatentUpscale"][2] == "Upscale Latent"
    assert entries["LatentCrop"][2] == "Crop Latent"
    assert entries["RebatchLatents"][2] == "Rebatch Latents"
    categories = {name: entries[name][1].CATEGORY for name in entries}
    assert categories["LatentRotate"] == "latent/transform"
    assert categories["LatentFromBatch"] == "latent/batch"
    assert categories["LatentBlend"] == "_for_testing"
    assert categories["SetLatentNoiseMask"] == "latent/inpaint"
    assert categories["LatentInterpolate"] == "latent/advanced"
    empty = EmptyLatentImage.INPUT_TYPES()["required"]
    assert empty["width"][1] == {"default": 512, "min": 16, "max": 16384, "step": 8,
                                 "tooltip": "Image width this latent will decode to, in pixels."}
    assert LatentCompositeMasked.INPUT_TYPES()["optional"] == {"mask": ("MASK",)}
    for _, cls, _, _ in latent_nodes.NODES:
        json.dumps(cls.INPUT_TYPES())
        assert callable(getattr(cls(), cls.FUNCTION))
