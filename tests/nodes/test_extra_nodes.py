"""The model-independent extra nodes called directly: image, mask, latent, logic and text."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from opencomfy.engine import NodeRegistry
from opencomfy.nodes import register_core_nodes
from opencomfy.nodes.image_extra import (
    Canny, ImageAddNoise, ImageScaleToMaxDimension, ResizeAndPadImage, SaveSVGNode,
)
from opencomfy.nodes.image_morphology import ImageRGBToYUV, ImageYUVToRGB, Morphology
from opencomfy.nodes.image_resize_extra import BatchImagesNode, ImageCropToMask, ResizeImageMaskNode
from opencomfy.nodes.image_save_extra import ImageCompare, SaveImageAdvanced
from opencomfy.nodes.latent_extra import (
    EmptyHunyuanImageLatent, EmptyHunyuanLatentVideo, EmptyLTXVLatentVideo, EmptyMochiLatentVideo,
    EmptyCosmosLatentVideo, EmptySD3LatentImage, EmptyChromaRadianceLatentImage,
    LatentApplyOperation, LatentCutToBatch, LatentOperationSharpen, LatentOperationTonemapReinhard,
    StableCascade_EmptyLatentImage,
)
from opencomfy.nodes.logic import (
    ColorToRGBInt, ComfyMathExpression, ComfyNumberConvert, ComfySwitchNode, CustomCombo,
    ResolutionSelector, SeedNode,
)
from opencomfy.nodes.mask_extra import MaskPreview, Painter, PorterDuffImageComposite
from opencomfy.nodes.text_extra import JsonExtractString, SaveText
from tests.nodes.conftest import run_node


def _image(h=4, w=6, value=0.5, c=3, b=1):
    return torch.full((b, h, w, c), value)


# -- latent ---------------------------------------------------------------------------------

@pytest.mark.parametrize("cls, kwargs, shape", [
    (EmptySD3LatentImage, {"width": 64, "height": 32}, (2, 16, 4, 8)),
    (EmptyChromaRadianceLatentImage, {"width": 32, "height": 16}, (2, 3, 16, 32)),
    (EmptyHunyuanImageLatent, {"width": 128, "height": 64}, (2, 64, 2, 4)),
    (EmptyHunyuanLatentVideo, {"width": 32, "height": 16, "length": 9}, (2, 16, 3, 2, 4)),
    (EmptyMochiLatentVideo, {"width": 32, "height": 16, "length": 13}, (2, 12, 3, 2, 4)),
    (EmptyCosmosLatentVideo, {"width": 32, "height": 16, "length": 17}, (2, 16, 3, 2, 4)),
    (EmptyLTXVLatentVideo, {"width": 64, "height": 32, "length": 9}, (2, 128, 2, 1, 2)),
])
def test_empty_latents_have_each_familys_shape(cls, kwargs, shape):
    (latent,) = run_node(cls, batch_size=2, **kwargs)
    assert tuple(latent["samples"].shape) == shape and not latent["samples"].any()


def test_stable_cascade_gives_both_stages():
    stage_c, stage_b = run_node(StableCascade_EmptyLatentImage, width=256, height=512,
                                compression=32, batch_size=1)
    assert tuple(stage_c["samples"].shape) == (1, 16, 16, 8)
    assert tuple(stage_b["samples"].shape) == (1, 4, 128, 64)


def test_latent_operations_keep_shape_and_act():
    latent = {"samples": torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))}
    (tonemap,) = run_node(LatentOperationTonemapReinhard, multiplier=1.0)
    (out,) = run_node(LatentApplyOperation, samples=latent, operation=tonemap)
    before = torch.linalg.vector_norm(latent["samples"], dim=1)
    after = torch.linalg.vector_norm(out["samples"], dim=1)
    assert out["samples"].shape == latent["samples"].shape and (after < before).all()
    (sharpen,) = run_node(LatentOperationSharpen, sharpen_radius=2, sigma=1.0, alpha=0.0)
    (same,) = run_node(LatentApplyOperation, samples=latent, operation=sharpen)
    assert torch.allclose(same["samples"], latent["samples"], atol=1e-5)  # alpha 0: identity


def test_latent_cut_to_batch_slices_in_order():
    samples = torch.arange(2 * 1 * 5 * 2 * 3, dtype=torch.float32).reshape(2, 1, 5, 2, 3)
    (out,) = run_node(LatentCutToBatch, samples={"samples": samples}, dim="t", slice_size=2)
    assert tuple(out["samples"].shape) == (4, 1, 2, 2, 3)  # 5 frames: 2 slices, 1 dropped
    assert torch.equal(out["samples"][1], samples[0, :, 2:4])
    image = {"samples": torch.zeros(1, 4, 8, 8)}
    assert run_node(LatentCutToBatch, samples=image, dim="t", slice_size=2)[0] is image
    (cols,) = run_node(LatentCutToBatch, samples=image, dim="x", slice_size=4)
    assert tuple(cols["samples"].shape) == (2, 4, 8, 4)


# -- logic ----------------------------------------------------------------------------------

def test_math_expression_outputs_and_values_list():
    assert run_node(ComfyMathExpression, expression="a * b + 1",
                    **{"values.a": 3, "values.b": 2.5}) == (8.5, 8, True)
    assert run_node(ComfyMathExpression, expression="sum(values) - 6",
                    **{"values.a": 1, "values.b": 2, "values.c": 3}) == (0.0, 0, False)


@pytest.mark.parametrize("expression", [
    "a.__class__", "a[0]", "(lambda: 1)()", "[x for x in values]", "9**9**9", "pow(10, 10**6)",
    "values * 10**9", "open('x')", "'text'", "1/0", "2**4000", "",
])
def test_math_expression_refuses_unsafe_or_huge_input(expression):
    with pytest.raises(ValueError, match="Math Expression|empty"):
        run_node(ComfyMathExpression, expression=expression, **{"values.a": 1})


def test_switch_asks_only_for_the_chosen_branch():
    node = ComfySwitchNode()
    assert node.check_lazy_status(True, on_false=None, on_true=None) == ["on_true"]
    assert node.check_lazy_status(False, on_false=None, on_true=None) == ["on_false"]
    assert node.execute(True, on_false="no", on_true="yes") == ("yes",)
    assert node.execute(False, on_true="yes") == (None,)


def test_small_logic_nodes():
    assert run_node(CustomCombo, choice="Turbo", index=2) == ("Turbo", 2)
    assert CustomCombo.VALIDATE_INPUTS(choice="anything") is True
    assert run_node(ComfyNumberConvert, value="3.7") == (3.7, 3)
    assert run_node(ComfyNumberConvert, value=True) == (1.0, 1)
    with pytest.raises(ValueError, match="Cannot convert"):
        run_node(ComfyNumberConvert, value="nan")
    assert run_node(SeedNode, seed=42) == (42,)
    assert run_node(ColorToRGBInt, color="#010203") == (66051, "#010203", 1.0)
    assert run_node(ColorToRGBInt, color="#ff000080")[1:] == ("#ff0000", 128 / 255)
    with pytest.raises(ValueError, match="#RRGGBB"):
        run_node(ColorToRGBInt, color="red")
    assert run_node(ResolutionSelector, aspect_ratio="1:1 (Square)", megapixels=1.0) == (1024, 1024)
    width, height = run_node(ResolutionSelector, aspect_ratio="16:9 (Widescreen)", megapixels=0.4,
                             multiple=32)
    assert width % 32 == 0 and height % 32 == 0 and width > height


# -- text -----------------------------------------------------------------------------------

def test_json_extract_string_skips_prose_and_stringifies():
    text = 'Sure! ```json\n{"mu": "forest", "n": 3, "none": null}\n``` done {broken'
    assert run_node(JsonExtractString, json_string=text, key="mu") == ("forest",)
    assert run_node(JsonExtractString, json_string=text, key="n") == ("3",)
    assert run_node(JsonExtractString, json_string=text, key="none") == ("",)
    assert run_node(JsonExtractString, json_string="no json {", key="x") == ("",)


def test_save_text_pretty_prints_json(comfy_dirs):
    out = run_node(SaveText, text='{"a": [1, 2]}', filename_prefix="notes/t", format="json")
    (saved,) = out["ui"]["files"]
    path = comfy_dirs / "output" / "notes" / saved["filename"]
    assert saved["filename"] == "t_00001.json" and out["result"] == ('{"a": [1, 2]}',)
    assert path.read_text() == json.dumps({"a": [1, 2]}, indent=2)


# -- images ---------------------------------------------------------------------------------

def test_add_noise_is_seeded_and_clamped():
    image = _image()
    (a,) = run_node(ImageAddNoise, image=image, seed=7, strength=0.5)
    (b,) = run_node(ImageAddNoise, image=image, seed=7, strength=0.5)
    assert torch.equal(a, b) and not torch.equal(a, image) and a.min() >= 0 and a.max() <= 1


def test_scale_to_max_dimension_and_resize_and_pad():
    (scaled,) = run_node(ImageScaleToMaxDimension, image=_image(4, 8), upscale_method="area",
                         largest_size=4)
    assert tuple(scaled.shape) == (1, 2, 4, 3)
    (padded,) = run_node(ResizeAndPadImage, image=_image(4, 8, 0.25), target_width=8,
                         target_height=8, padding_color="white", interpolation="bilinear")
    assert tuple(padded.shape) == (1, 8, 8, 3)
    assert padded[0, 0, 0, 0] == 1.0 and padded[0, 4, 4, 0] == pytest.approx(0.25)


def test_canny_finds_the_edge_of_a_square():
    image = torch.zeros(1, 32, 32, 3)
    image[:, 8:24, 8:24] = 1.0
    (edges,) = run_node(Canny, image=image, low_threshold=0.1, high_threshold=0.2)
    assert tuple(edges.shape) == (1, 32, 32, 3)
    assert edges[0, 16, 6:10, 0].any() and not edges[0, 16, 14:18, 0].any()
    assert not edges[0, 0:3, 0:3].any()
    with pytest.raises(ValueError, match="low_threshold"):
        run_node(Canny, image=image, low_threshold=0.9, high_threshold=0.2)


def test_morphology_and_yuv_round_trip():
    image = torch.zeros(1, 9, 9, 3)
    image[:, 4, 4] = 1.0
    (dilated,) = run_node(Morphology, image=image, operation="dilate", kernel_size=3)
    assert dilated[0, 3:6, 3:6].all() and dilated[..., 0].sum() == 9
    (opened,) = run_node(Morphology, image=image, operation="open", kernel_size=3)
    assert not opened.any()  # a lone dot does not survive opening
    (top_hat,) = run_node(Morphology, image=image, operation="top_hat", kernel_size=3)
    assert torch.equal(top_hat, image)
    colour = torch.rand(1, 4, 4, 3, generator=torch.Generator().manual_seed(1))
    y, u, v = run_node(ImageRGBToYUV, image=colour)
    assert y.shape == colour.shape
    (back,) = run_node(ImageYUVToRGB, Y=y, U=u, V=v)
    assert torch.allclose(back, colour, atol=2e-3)


def test_resize_image_mask_node_keeps_the_input_type():
    (mask,) = run_node(ResizeImageMaskNode, input=torch.ones(1, 4, 8), resize_type="scale by",
                       scale_method="nearest-exact", **{"resize_type.multiplier": 0.5})
    assert tuple(mask.shape) == (1, 2, 4)
    (image,) = run_node(ResizeImageMaskNode, input=_image(4, 8), resize_type="scale longer dimension",
                        scale_method="area", **{"resize_type.longer_size": 16})
    assert tuple(image.shape) == (1, 8, 16, 3)
    (matched,) = run_node(ResizeImageMaskNode, input=_image(4, 8), resize_type="match size",
                          scale_method="bilinear", **{"resize_type.match": torch.zeros(1, 6, 6),
                                                      "resize_type.crop": "center"})
    assert tuple(matched.shape) == (1, 6, 6, 3)
    with pytest.raises(ValueError, match="match input"):
        run_node(ResizeImageMaskNode, input=_image(), resize_type="match size", scale_method="area")


def test_crop_to_mask_centres_the_subject_on_the_background():
    image = torch.ones(1, 16, 16, 3)
    mask = torch.zeros(1, 16, 16)
    mask[:, 2:6, 2:6] = 1.0
    (out,) = run_node(ImageCropToMask, images=image, masks=mask, width=64, height=64,
                      pad_factor=2.0, grow_mask=0, background="#000000")
    assert tuple(out.shape) == (1, 64, 64, 3)
    assert out[0, 32, 32, 0] > 0.9 and out[0, 1, 1, 0] < 0.1


def test_batch_images_orders_slots_and_fits_sizes():
    (batch,) = run_node(BatchImagesNode, **{"images.image10": _image(value=0.3),
                                             "images.image0": _image(value=0.1),
                                             "images.image2": _image(8, 8, 0.2, c=4)})
    assert tuple(batch.shape) == (3, 4, 6, 3)
    assert [round(float(x), 2) for x in batch[:, 0, 0, 0]] == [0.1, 0.2, 0.3]


def test_porter_duff_src_over_and_mask_preview(comfy_dirs):
    source, destination = _image(value=1.0), _image(value=0.0)
    half, full = torch.full((1, 4, 6), 0.5), torch.ones(1, 4, 6)
    image, alpha = run_node(PorterDuffImageComposite, source=source * 0.5, source_alpha=half,
                            destination=destination, destination_alpha=full, mode="SRC_OVER")
    assert torch.allclose(image, torch.full_like(image, 0.5)) and torch.allclose(alpha, full)
    out = run_node(MaskPreview, mask=half)
    (entry,) = out["ui"]["images"]
    assert entry["type"] == "temp"
    saved = Image.open(comfy_dirs / "temp" / entry["subfolder"] / entry["filename"])
    assert np.asarray(saved)[0, 0].tolist() == [127, 127, 127]


def test_painter_blends_the_canvas_file(comfy_dirs):
    canvas = np.zeros((64, 64, 4), np.uint8)
    canvas[:, :32] = [255, 0, 0, 255]
    Image.fromarray(canvas, "RGBA").save(comfy_dirs / "input" / "paint.png")
    image, mask = run_node(Painter, mask="paint.png [input]", width=64, height=64,
                           bg_color="#0000ff")
    assert image[0, 0, 0].tolist() == [1.0, 0.0, 0.0] and image[0, 0, 63].tolist() == [0, 0, 1.0]
    assert mask[0, 0, 0] == 1.0 and mask[0, 0, 63] == 0.0
    blank, empty = run_node(Painter, mask="", width=64, height=64, bg_color="#000000")
    assert not blank.any() and not empty.any()
    with pytest.raises(ValueError, match="not found"):
        run_node(Painter, mask="missing.png [input]", width=64, height=64, bg_color="#000000")


def test_save_nodes_write_their_files(comfy_dirs):
    out = run_node(SaveSVGNode, svg=b'<svg xmlns="http://www.w3.org/2000/svg"></svg>',
                   filename_prefix="svg/t", prompt={"1": {}})
    (entry,) = out["ui"]["images"]
    text = (comfy_dirs / "output" / "svg" / entry["filename"]).read_text()
    assert entry["filename"].endswith(".svg") and "<metadata>" in text and "prompt" in text
    out = run_node(SaveImageAdvanced, images=_image(2, 2, 0.5), filename_prefix="adv/x",
                   format="png", **{"format.bit_depth": "16-bit"})
    (entry,) = out["ui"]["images"]
    saved = Image.open(comfy_dirs / "output" / "adv" / entry["filename"])
    assert saved.size == (2, 2) and out["result"][0].shape == (1, 2, 2, 3)
    with pytest.raises(ValueError, match="'exr' format is not available"):
        run_node(SaveImageAdvanced, images=_image(), format="exr")
    compare = run_node(ImageCompare, image_a=_image(), image_b=None)
    assert len(compare["ui"]["a_images"]) == 1 and compare["ui"]["b_images"] == []


def test_catalogue_shows_comfyuis_dynamic_sockets():
    registry = NodeRegistry()
    register_core_nodes(registry)
    info = registry.object_info()
    values = info["ComfyMathExpression"]["input"]["required"]["values"]
    assert values[0] == "COMFY_AUTOGROW_V3" and values[1]["template"]["names"][:2] == ["a", "b"]
    switch = info["ComfySwitchNode"]
    assert switch["output"] == ["COMFY_MATCHTYPE_V3"] and switch["experimental"] is True
    assert switch["input"]["optional"]["on_true"][1]["lazy"] is True
    resize = info["ResizeImageMaskNode"]["input"]["required"]["resize_type"]
    assert resize[0] == "COMFY_DYNAMICCOMBO_V3"
    assert resize[1]["options"][0]["key"] == "scale by"
    batch = info["BatchImagesNode"]["input"]["required"]["images"]
    assert batch[1]["template"]["prefix"] == "image" and batch[1]["template"]["min"] == 2


def test_comfy_extras_nodes_mask_exports_the_composite_helper():
    from opencomfy.compat.comfy_extras import build_module
    from opencomfy.nodes.image_compositing import composite

    module = build_module("comfy_extras.nodes_mask")
    assert module.composite is composite and module.MaskPreview is MaskPreview
    destination = torch.zeros(1, 3, 4, 4)
    module.composite(destination, torch.ones(1, 3, 2, 2), 1, 1, None, 1)
    assert destination[0, 0, 1:3, 1:3].all() and destination[0, 0].sum() == 4
