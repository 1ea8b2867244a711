"""Image output nodes of newer ComfyUI versions (not in the reference catalogue): Image
Compare (two batches for the frontend's slider) and Save Image (Advanced). Their inputs were
inferred from the stock workflow templates and the embedded node docs.

Save Image (Advanced) writes PNG in 8 or 16 bits per channel. Its EXR and AVIF formats need
encoders we do not ship; choosing them fails the node with an error that says so.
"""

from __future__ import annotations

import json
import struct
import zlib

import numpy as np
import torch

from opencomfy.compat import folder_paths
from opencomfy.nodes.image_extra import writer_of
from opencomfy.nodes.image_io import PreviewImage
from opencomfy.nodes.image_saving import png_text_metadata, tensor_to_pil, write_numbered_file
from opencomfy.nodes.v3_dynamic import V3DynamicNode
from opencomfy.nodes.v3_schema import node_entries


class ImageCompare(V3DynamicNode):
    """Shows two image batches in the frontend's before/after slider (temp files)."""

    NODE_ID = "ImageCompare"
    DISPLAY_NAME = "Image Compare"
    CATEGORY = "image"
    RELATIVE_PYTHON_MODULE = "comfy_extras.nodes_image_compare"
    EXPERIMENTAL = True
    OUTPUT_NODE = True
    RETURN_TYPES = ()

    @classmethod
    def INPUT_TYPES(cls):
        # compare_view is the slider widget: it holds no value, so the engine never needs it.
        return {"optional": {"image_a": ("IMAGE", {}), "image_b": ("IMAGE", {}),
                             "compare_view": ("IMAGECOMPARE", {})}}

    @classmethod
    def object_info_inputs(cls):
        return {"required": {"compare_view": ("IMAGECOMPARE", {})},
                "optional": {"image_a": ("IMAGE", {}), "image_b": ("IMAGE", {})}}

    def execute(self, image_a=None, image_b=None, compare_view=None):
        ui: dict = {"a_images": [], "b_images": []}
        for key, images, prefix in (("a_images", image_a, "comfy.compare.a"),
                                    ("b_images", image_b, "comfy.compare.b")):
            if images is not None and len(images) > 0:
                ui[key] = PreviewImage().save_images(images, prefix)["ui"]["images"]
        return {"ui": ui}


_PNG_DEPTHS = ["8-bit", "16-bit"]
FORMATS = {
    "png": {"bit_depth": _PNG_DEPTHS, "input_color_space": ["sRGB"]},
    "exr": {"bit_depth": ["16-bit float", "32-bit float"],
            "input_color_space": ["sRGB", "HDR", "linear", "linear ACEScg"]},
    "avif": {"bit_depth": ["auto", "8-bit YUV420", "10-bit YUV420"],
             "input_color_space": ["sRGB", "HDR", "HDR PQ"]},
}


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png16_bytes(image: torch.Tensor, text: dict[str, str]) -> bytes:
    """A 16-bit-per-channel PNG of one ``[H, W, C]`` image (Pillow writes 16 bits only for grey)."""
    pixels = np.clip(image.detach().cpu().float().numpy(), 0, 1)
    height, width, channels = pixels.shape
    colour_type = {1: 0, 3: 2, 4: 6}.get(channels)
    if colour_type is None:
        raise ValueError(f"Save Image (Advanced): PNG needs 1, 3 or 4 channels, not {channels}")
    samples = np.round(pixels * 65535).astype(">u2").reshape(height, width * channels)
    # Each row starts with filter type 0 (none).
    raw = b"".join(b"\x00" + row.tobytes() for row in samples)
    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    chunks = [_png_chunk(b"IHDR", header)]
    chunks += [_png_chunk(b"tEXt", key.encode("latin-1") + b"\x00" + value.encode("latin-1",
                                                                                  "replace"))
               for key, value in text.items()]
    chunks += [_png_chunk(b"IDAT", zlib.compress(raw, 4)), _png_chunk(b"IEND", b"")]
    return b"\x89PNG\r\n\x1a\n" + b"".join(chunks)


class SaveImageAdvanced(V3DynamicNode):
    """Saves images with a chosen format and bit depth; passes the images on."""

    NODE_ID = "SaveImageAdvanced"
    DISPLAY_NAME = "Save Image (Advanced)"
    CATEGORY = "image"
    RELATIVE_PYTHON_MODULE = "comfy_extras.nodes_images"
    OUTPUT_NODE = True
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("images",)

    @classmethod
    def INPUT_TYPES(cls):
        nested = {"format.bit_depth": ("COMBO", {"options": sorted(
                      {d for f in FORMATS.values() for d in f["bit_depth"]})}),
                  "format.input_color_space": ("COMBO", {"options": sorted(
                      {c for f in FORMATS.values() for c in f["input_color_space"]})}),
                  "format.crf": ("INT", {"default": 18, "min": 1, "max": 63}),
                  "format.save_mode": ("COMBO", {"options": ["still images", "animated"]}),
                  "format.save_mode.fps": ("FLOAT", {"default": 6.0, "min": 0.01, "max": 1000.0}),
                  "format.save_mode.loop_count": ("INT", {"default": 0, "min": 0, "max": 1000})}
        return {"required": {
            "images": ("IMAGE", {}),
            "filename_prefix": ("STRING", {"default": "ComfyUI", "multiline": False}),
            "format": ("COMBO", {"options": list(FORMATS)}),
        }, "optional": nested, "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"}}

    @classmethod
    def object_info_inputs(cls):
        def option(key):
            spec = FORMATS[key]
            inputs = {"bit_depth": ("COMBO", {"default": spec["bit_depth"][0], "multiselect": False,
                                              "options": spec["bit_depth"]}),
                      "input_color_space": ("COMBO", {"default": "sRGB", "multiselect": False,
                                                      "options": spec["input_color_space"]})}
            if key == "avif":
                animated = {"fps": ("FLOAT", {"default": 6.0, "min": 0.01, "max": 1000.0,
                                              "step": 0.01}),
                            "loop_count": ("INT", {"default": 0, "min": 0, "max": 1000})}
                inputs["crf"] = ("INT", {"default": 18, "min": 1, "max": 63})
                inputs["save_mode"] = ("COMFY_DYNAMICCOMBO_V3", {"options": [
                    {"key": "still images", "inputs": {"required": {}}},
                    {"key": "animated", "inputs": {"required": animated}}]})
            return {"key": key, "inputs": {"required": inputs}}

        return {"required": {
            "images": ("IMAGE", {}),
            "filename_prefix": ("STRING", {"default": "ComfyUI", "multiline": False}),
            "format": ("COMFY_DYNAMICCOMBO_V3", {"options": [option(k) for k in FORMATS]}),
        }, "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"}}

    def execute(self, images, filename_prefix="ComfyUI", format="png", prompt=None,  # noqa: A002
                extra_pnginfo=None, **nested):
        if format != "png":
            raise ValueError(f"Save Image (Advanced): the '{format}' format is not available on "
                             "this server (it needs an encoder that is not installed); use png")
        bit_depth = nested.get("format.bit_depth", "8-bit")
        if bit_depth not in _PNG_DEPTHS:
            raise ValueError(f"Save Image (Advanced): PNG bit depth must be one of {_PNG_DEPTHS}")
        height, width = images.shape[1], images.shape[2]
        target = folder_paths.resolve_save_target(filename_prefix,
                                                  folder_paths.get_output_directory(), width, height)
        metadata = png_text_metadata(prompt, extra_pnginfo)
        # The same tEXt fields for the 16-bit writer (metadata is None under --disable-metadata).
        text = dict(_text_fields(prompt, extra_pnginfo)) if metadata is not None else {}
        results = []
        for index, image in enumerate(images):
            if image.shape[-1] not in (1, 3, 4):
                raise ValueError("Save Image (Advanced): PNG needs 1, 3 or 4 channels, "
                                 f"not {image.shape[-1]}")
            stem = target.filename.replace("%batch_num%", str(index))
            if bit_depth == "16-bit":
                write = writer_of(png16_bytes(image, text))
            else:
                picture = tensor_to_pil(image)
                write = lambda f, p=picture: p.save(f, format="PNG", pnginfo=metadata,  # noqa: E731
                                                    compress_level=4)
            name = write_numbered_file(target, stem=stem, extension="png", write=write)
            results.append({"filename": name, "subfolder": target.subfolder, "type": "output"})
        return {"ui": {"images": results}, "result": (images,)}


def _text_fields(prompt, extra_pnginfo) -> list[tuple[str, str]]:
    fields = []
    if prompt is not None:
        fields.append(("prompt", json.dumps(prompt)))
    for key, value in (extra_pnginfo or {}).items():
        fields.append((key, json.dumps(value)))
    return fields


_CLASSES = [ImageCompare, SaveImageAdvanced]
NODES = [entry for cls in _CLASSES for entry in node_entries([cls], cls.RELATIVE_PYTHON_MODULE)]
