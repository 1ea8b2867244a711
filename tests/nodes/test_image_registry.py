"""The image half of the core list: ComfyUI's class names, display names, modules, categories."""

from __future__ import annotations

import importlib
import logging

import pytest

import opencomfy.nodes as core
from opencomfy.nodes import register_core_nodes

# class_type: (display name, python_module, category)
EXPECTED = {
    "SaveImage": ("Save Image", "nodes", "image"),
    "PreviewImage": ("Preview Image", "nodes", "image"),
    "LoadImage": ("Load Image", "nodes", "image"),
    "LoadImageMask": ("Load Image (as Mask)", "nodes", "mask"),
    "LoadImageOutput": ("Load Image (from Outputs)", "nodes", "image"),
    "ImageScale": ("Upscale Image", "nodes", "image/upscaling"),
    "ImageScaleBy": ("Upscale Image By", "nodes", "image/upscaling"),
    "ImageInvert": ("Invert Image", "nodes", "image"),
    "ImageBatch": ("Batch Images", "nodes", "image"),
    "EmptyImage": ("EmptyImage", "nodes", "image"),
    "ImagePadForOutpaint": ("Pad Image for Outpainting", "nodes", "image"),
    "ImageScaleToTotalPixels": ("Scale Image to Total Pixels", "comfy_extras.nodes_post_processing",
                                "image/upscaling"),
    "ImageBlend": ("Image Blend", "comfy_extras.nodes_post_processing", "image/postprocessing"),
    "ImageBlur": ("Image Blur", "comfy_extras.nodes_post_processing", "image/postprocessing"),
    "ImageQuantize": ("Image Quantize", "comfy_extras.nodes_post_processing", "image/postprocessing"),
    "ImageSharpen": ("Image Sharpen", "comfy_extras.nodes_post_processing", "image/postprocessing"),
    "ImageCrop": ("Image Crop", "comfy_extras.nodes_images", "image/transform"),
    "ImageStitch": ("Image Stitch", "comfy_extras.nodes_images", "image/transform"),
    "ImageFlip": ("ImageFlip", "comfy_extras.nodes_images", "image/transform"),
    "ImageRotate": ("ImageRotate", "comfy_extras.nodes_images", "image/transform"),
    "RepeatImageBatch": ("RepeatImageBatch", "comfy_extras.nodes_images", "image/batch"),
    "ImageFromBatch": ("ImageFromBatch", "comfy_extras.nodes_images", "image/batch"),
    "GetImageSize": ("Get Image Size", "comfy_extras.nodes_images", "image"),
    "SaveAnimatedWEBP": ("SaveAnimatedWEBP", "comfy_extras.nodes_images", "image/animation"),
    "SaveAnimatedPNG": ("SaveAnimatedPNG", "comfy_extras.nodes_images", "image/animation"),
    "RebatchImages": ("Rebatch Images", "comfy_extras.nodes_rebatch", "image/batch"),
    "ImageCompositeMasked": ("ImageCompositeMasked", "comfy_extras.nodes_mask", "image"),
    "JoinImageWithAlpha": ("Join Image with Alpha", "comfy_extras.nodes_compositing", "mask/compositing"),
    "SplitImageWithAlpha": ("Split Image with Alpha", "comfy_extras.nodes_compositing", "mask/compositing"),
}


class RecordingRegistry:
    def __init__(self):
        self.added = {}

    def add(self, class_type, cls, display_name=None, python_module="nodes"):
        assert class_type not in self.added, f"{class_type} registered twice"
        self.added[class_type] = (cls, display_name, python_module)


def test_every_image_node_is_registered_as_comfyui_names_it():
    registry = RecordingRegistry()
    register_core_nodes(registry)
    for class_type, (display, module, category) in EXPECTED.items():
        cls, got_display, got_module = registry.added[class_type]
        assert (got_display, got_module, cls.CATEGORY) == (display, module, category), class_type
        assert isinstance(cls.INPUT_TYPES(), dict) and hasattr(cls, cls.FUNCTION)


def test_registration_skips_only_a_missing_module(monkeypatch, caplog):
    monkeypatch.setattr(core, "CORE_NODE_MODULES", ("opencomfy.nodes.image_io",
                                                    "opencomfy.nodes.not_written_yet"))
    registry = RecordingRegistry()
    with caplog.at_level(logging.WARNING):
        register_core_nodes(registry)
    assert "SaveImage" in registry.added
    assert "not_written_yet" in caplog.text

    real_import = importlib.import_module

    def broken(name, *args):
        if name == "opencomfy.nodes.image_io":
            raise ModuleNotFoundError("No module named 'a_dependency'", name="a_dependency")
        return real_import(name, *args)

    monkeypatch.setattr(importlib, "import_module", broken)
    with pytest.raises(ModuleNotFoundError):
        register_core_nodes(RecordingRegistry())
