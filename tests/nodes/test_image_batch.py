"""EmptyImage, ImageBatch, RepeatImageBatch, ImageFromBatch, RebatchImages, GetImageSize."""

from __future__ import annotations

import pytest
import torch

from opencomfy.engine import progress
from opencomfy.nodes.image_batch import (EmptyImage, GetImageSize, ImageBatch, ImageFromBatch,
                                         RebatchImages, RepeatImageBatch)
from tests.nodes.conftest import run_node


def test_empty_image_color_channels():
    (image,) = run_node(EmptyImage, width=3, height=2, batch_size=4, color=0xFF8000)
    assert image.shape == (4, 2, 3, 3) and image.dtype == torch.float32
    assert image[3, 1, 2].tolist() == pytest.approx([1.0, 128 / 255, 0.0])
    (black,) = run_node(EmptyImage, width=1, height=1, batch_size=1, color=0)
    assert black.tolist() == [[[[0.0, 0.0, 0.0]]]]


def test_image_batch_concatenates_and_fits_the_second_image():
    a = torch.zeros(1, 2, 2, 3)
    b = torch.ones(2, 2, 2, 3)
    (out,) = run_node(ImageBatch, image1=a, image2=b)
    assert out.shape == (3, 2, 2, 3) and out[1:].eq(1).all()
    # 4x2 -> 2x2 with "center": the middle two columns, bilinear
    wide = torch.arange(8, dtype=torch.float32).reshape(1, 1, 8, 1).repeat(1, 2, 1, 3) / 8
    (out,) = run_node(ImageBatch, image1=torch.zeros(1, 2, 2, 3), image2=wide[:, :, 2:6])
    assert out.shape == (2, 2, 2, 3)
    assert torch.allclose(out[1, 0, :, 0], torch.tensor([3 / 8, 4 / 8]))


def test_repeat_and_from_batch():
    image = torch.arange(3.0).reshape(3, 1, 1, 1)
    (rep,) = run_node(RepeatImageBatch, image=image, amount=2)
    assert rep.flatten().tolist() == [0, 1, 2, 0, 1, 2]
    (part,) = run_node(ImageFromBatch, image=image, batch_index=1, length=5)
    assert part.flatten().tolist() == [1, 2]
    (last,) = run_node(ImageFromBatch, image=image, batch_index=4000, length=1)
    assert last.flatten().tolist() == [2]
    part[0] = 9  # a copy, not a view
    assert image[1].item() == 1


def test_rebatch_images_regroups_lists():
    a = torch.arange(3.0).reshape(3, 1, 1, 1)
    b = torch.arange(3.0, 5.0).reshape(2, 1, 1, 1)
    (batches,) = run_node(RebatchImages, images=[a, b], batch_size=[2])
    assert [x.flatten().tolist() for x in batches] == [[0, 1], [2, 3], [4]]
    assert RebatchImages.INPUT_IS_LIST is True and RebatchImages.OUTPUT_IS_LIST == (True,)


def test_get_image_size_returns_and_shows_the_size(monkeypatch):
    shown = []
    monkeypatch.setattr(progress, "send_progress_text", lambda text, node_id=None: shown.append((text, node_id)))
    assert run_node(GetImageSize, image=torch.zeros(2, 5, 7, 3), unique_id="12") == (7, 5, 2)
    assert shown == [("width: 7, height: 5\n batch size: 2", "12")]
    assert run_node(GetImageSize, image=torch.zeros(1, 1, 1, 3)) == (1, 1, 1)
    assert GetImageSize.RETURN_NAMES == ("width", "height", "batch_size")
    assert GetImageSize.INPUT_TYPES()["hidden"] == {"unique_id": "UNIQUE_ID"}
