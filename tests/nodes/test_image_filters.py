"""Invert, blur, sharpen, quantize, blend, masked composite and alpha split/join."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from opencomfy.nodes.image_compositing import (ImageBlend, ImageCompositeMasked,
                                               JoinImageWithAlpha, SplitImageWithAlpha)
from opencomfy.nodes.image_filters import (ImageBlur, ImageInvert, ImageQuantize, ImageSharpen,
                                           gaussian_kernel)
from tests.nodes.conftest import run_node


def _reference_convolution(image: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Plain loops: reflect-padded correlation of every channel with ``kernel``."""
    radius = kernel.shape[0] // 2
    b, h, w, c = image.shape
    arr = np.pad(image.double().numpy(), ((0, 0), (radius, radius), (radius, radius), (0, 0)),
                 mode="reflect")
    k = kernel.double().numpy()
    out = np.zeros((b, h, w, c))
    for i in range(h):
        for j in range(w):
            window = arr[:, i:i + 2 * radius + 1, j:j + 2 * radius + 1, :]
            out[:, i, j, :] = np.einsum("bxyc,xy->bc", window, k)
    return torch.from_numpy(out).float()


def test_invert():
    (out,) = run_node(ImageInvert, image=torch.tensor([[[[0.0, 0.25, 1.0]]]]))
    assert out.tolist() == [[[[1.0, 0.75, 0.0]]]]


def test_gaussian_kernel_values():
    k = gaussian_kernel(3, 1.0)
    # positions -1, 0, 1 on each axis; weight exp(-d^2 / 2)
    raw = torch.tensor([[math.exp(-(x * x + y * y) / 2) for y in (-1, 0, 1)] for x in (-1, 0, 1)])
    assert torch.allclose(k, raw / raw.sum())


def test_blur_matches_a_reflect_padded_gaussian():
    image = torch.rand(2, 5, 6, 3)
    (out,) = run_node(ImageBlur, image=image, blur_radius=2, sigma=0.7)
    expected = _reference_convolution(image, gaussian_kernel(5, 0.7))
    assert out.shape == image.shape
    assert torch.allclose(out, expected, atol=1e-6)
    flat = torch.full((1, 4, 4, 3), 0.3)
    assert torch.allclose(run_node(ImageBlur, image=flat, blur_radius=1, sigma=1.0)[0], flat)


def test_sharpen_matches_the_unsharp_kernel_and_clamps():
    image = torch.rand(1, 5, 5, 3)
    (out,) = run_node(ImageSharpen, image=image, sharpen_radius=1, sigma=1.0, alpha=0.5)
    kernel = gaussian_kernel(3, 1.0) * -5.0
    kernel[1, 1] = kernel[1, 1] - kernel.sum() + 1.0
    expected = _reference_convolution(image, kernel).clamp(0, 1)
    assert torch.allclose(out, expected, atol=1e-5)
    flat = torch.full((1, 4, 4, 3), 0.4)
    assert torch.allclose(run_node(ImageSharpen, image=flat, sharpen_radius=1, sigma=1.0,
                                   alpha=1.0)[0], flat, atol=1e-6)


def test_quantize_to_the_image_own_colors_is_lossless_and_to_one_color_is_flat():
    two = torch.zeros(1, 2, 2, 3)
    two[0, 0] = torch.tensor([1.0, 0.0, 0.0])
    two[0, 1] = torch.tensor([0.0, 0.0, 1.0])
    for dither in ("none", "floyd-steinberg", "bayer-2", "bayer-16"):
        (out,) = run_node(ImageQuantize, image=two, colors=2, dither=dither)
        assert torch.equal(out, two), dither
    gray = torch.rand(1, 4, 4, 3)
    (out,) = run_node(ImageQuantize, image=gray, colors=1, dither="none")
    assert len(torch.unique(out.reshape(-1, 3), dim=0)) == 1


def test_quantize_bayer_dithers_a_flat_midtone_into_a_pattern():
    image = torch.full((1, 8, 8, 3), 0.5)
    image[0, 0, 0] = 0.0
    image[0, 0, 1] = 1.0
    (none,) = run_node(ImageQuantize, image=image, colors=2, dither="none")
    (bayer,) = run_node(ImageQuantize, image=image, colors=2, dither="bayer-4")
    assert len(torch.unique(none[0, 2:, 2:].reshape(-1, 3), dim=0)) == 1
    assert len(torch.unique(bayer[0, 2:, 2:].reshape(-1, 3), dim=0)) == 2


def test_quantize_keeps_an_alpha_channel():
    image = torch.cat([torch.zeros(1, 2, 2, 3), torch.full((1, 2, 2, 1), 0.5)], dim=-1)
    (out,) = run_node(ImageQuantize, image=image, colors=4, dither="none")
    assert out.shape == (1, 2, 2, 4) and out[..., 3].eq(0.5).all()


@pytest.mark.parametrize("mode,expected", [
    ("normal", 0.8),
    ("multiply", 0.2 * 0.8),
    ("screen", 1 - 0.8 * 0.2),
    ("overlay", 2 * 0.2 * 0.8),
    ("soft_light", None),  # computed below
    ("difference", 0.2 - 0.8),  # signed; the final clamp makes it 0
])
def test_blend_modes(mode, expected):
    a = torch.full((1, 1, 1, 3), 0.2)
    b = torch.full((1, 1, 1, 3), 0.8)
    if mode == "soft_light":
        # img2 > 0.5: a + (2b - 1) * (D(a) - a), D(0.2) = ((16*0.2 - 12)*0.2 + 4)*0.2
        d = ((16 * 0.2 - 12) * 0.2 + 4) * 0.2
        expected = 0.2 + 0.6 * (d - 0.2)
    (full,) = run_node(ImageBlend, image1=a, image2=b, blend_factor=1.0, blend_mode=mode)
    assert full[0, 0, 0, 0].item() == pytest.approx(max(0.0, expected), abs=1e-6)
    (half,) = run_node(ImageBlend, image1=a, image2=b, blend_factor=0.5, blend_mode=mode)
    assert half[0, 0, 0, 0].item() == pytest.approx(max(0.0, 0.1 + expected / 2), abs=1e-6)


def test_blend_resizes_image2_and_matches_alpha():
    a = torch.full((1, 4, 4, 3), 0.2)
    b = torch.full((1, 2, 2, 4), 0.6)
    (out,) = run_node(ImageBlend, image1=a, image2=b, blend_factor=1.0, blend_mode="normal")
    assert out.shape == (1, 4, 4, 3)
    assert torch.allclose(out, torch.full((1, 4, 4, 3), 0.6), atol=1e-6)
    rgba = torch.full((1, 2, 2, 4), 0.2)
    (out,) = run_node(ImageBlend, image1=rgba, image2=torch.full((1, 2, 2, 3), 0.6),
                      blend_factor=1.0, blend_mode="multiply")
    # the RGB image gets an opaque alpha: alpha 0.2 * 1.0
    assert torch.allclose(out[0, 0, 0], torch.tensor([0.12, 0.12, 0.12, 0.2]))


def test_composite_masked_pastes_with_offset_and_clips():
    dst = torch.zeros(1, 3, 4, 3)
    src = torch.ones(1, 2, 2, 3)
    (out,) = run_node(ImageCompositeMasked, destination=dst, source=src, x=3, y=1,
                      resize_source=False)
    expected = torch.zeros(3, 4)
    expected[1:3, 3] = 1
    assert torch.equal(out[0, ..., 0], expected)
    assert not dst.any()  # the input is not modified


def test_composite_masked_uses_the_mask_and_resize():
    dst = torch.zeros(1, 2, 2, 3)
    src = torch.ones(1, 1, 1, 3)
    mask = torch.tensor([[[0.0, 1.0], [0.25, 1.0]]])
    (out,) = run_node(ImageCompositeMasked, destination=dst, source=src, x=0, y=0,
                      resize_source=True, mask=mask)
    assert out[0, ..., 1].tolist() == [[0.0, 1.0], [0.25, 1.0]]


def test_composite_masked_alpha_channels():
    dst = torch.zeros(1, 1, 1, 4)
    src = torch.full((1, 1, 1, 3), 0.5)
    (out,) = run_node(ImageCompositeMasked, destination=dst, source=src, x=0, y=0,
                      resize_source=False)
    assert out.tolist() == [[[[0.5, 0.5, 0.5, 1.0]]]]


def test_split_and_join_alpha_round_trip():
    rgba = torch.rand(2, 3, 3, 4)
    rgb, mask = run_node(SplitImageWithAlpha, image=rgba)
    assert torch.equal(rgb, rgba[..., :3])
    assert torch.allclose(mask, 1.0 - rgba[..., 3])
    (joined,) = run_node(JoinImageWithAlpha, image=rgb, alpha=mask)
    assert torch.allclose(joined, rgba, atol=1e-6)
    rgb_only, opaque = run_node(SplitImageWithAlpha, image=torch.rand(1, 2, 2, 3))
    assert not opaque.any() and rgb_only.shape == (1, 2, 2, 3)


def test_join_alpha_resizes_the_mask_and_accepts_2d():
    image = torch.zeros(2, 4, 4, 3)
    (out,) = run_node(JoinImageWithAlpha, image=image, alpha=torch.ones(2, 2))
    assert out.shape == (1, 4, 4, 4) and not out[..., 3].any()
