"""Animated image files: the whole IMAGE batch as the frames of one WEBP or PNG (APNG)."""

from __future__ import annotations

import json

from PIL import Image
from PIL.PngImagePlugin import PngInfo

from opencomfy.compat import folder_paths
from opencomfy.nodes.image_saving import save_metadata_enabled, tensor_to_pil, write_numbered_file

# EXIF tags ComfyUI borrows for WEBP metadata: Model holds the prompt, Make and the tags
# below it hold the extra_pnginfo entries ("workflow:{...}").
_EXIF_MODEL = 0x0110
_EXIF_MAKE = 0x010F


def _webp_exif(first_frame: Image.Image, prompt, extra_pnginfo) -> Image.Exif:
    exif = first_frame.getexif()
    if not save_metadata_enabled():
        return exif
    if prompt is not None:
        exif[_EXIF_MODEL] = "prompt:{}".format(json.dumps(prompt))
    if extra_pnginfo is not None:
        tag = _EXIF_MAKE
        for key, value in extra_pnginfo.items():
            exif[tag] = "{}:{}".format(key, json.dumps(value))
            tag -= 1
    return exif


def _apng_metadata(prompt, extra_pnginfo) -> PngInfo | None:
    """ComfyUI's private ``comf`` chunks after the image data: ``key NUL json``."""
    if not save_metadata_enabled():
        return None
    metadata = PngInfo()
    entries = []
    if prompt:
        entries.append(("prompt", prompt))
    if extra_pnginfo:
        entries.extend(extra_pnginfo.items())
    for key, value in entries:
        payload = key.encode("latin-1", "strict") + b"\0" + json.dumps(value).encode("latin-1", "strict")
        metadata.add(b"comf", payload, after_idat=True)
    return metadata


def _save_animation(images, filename_prefix: str, extension: str, write_frames) -> dict:
    """Write one animated file of the batch into the output folder; the node's UI dict."""
    height, width = images[0].shape[0], images[0].shape[1]
    target = folder_paths.resolve_save_target(
        filename_prefix, folder_paths.get_output_directory(), width, height)
    frames = [tensor_to_pil(image) for image in images]
    name = write_numbered_file(target, stem=target.filename, extension=extension,
                               write=lambda f: write_frames(f, frames))
    ui: dict[str, list] = {"images": [{"filename": name, "subfolder": target.subfolder, "type": "output"}]}
    if len(frames) > 1:
        ui["animated"] = [True]
    return {"ui": ui}


class SaveAnimatedWEBP:
    COMPRESS_METHODS = {"default": 4, "fastest": 0, "slowest": 6}

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "images": ("IMAGE",),
                "filename_prefix": ("STRING", {"default": "ComfyUI"}),
                "fps": ("FLOAT", {"default": 6.0, "min": 0.01, "max": 1000.0, "step": 0.01}),
                "lossless": ("BOOLEAN", {"default": True}),
                "quality": ("INT", {"default": 80, "min": 0, "max": 100}),
                "method": (list(cls.COMPRESS_METHODS.keys()),),
            },
            "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"},
        }

    RETURN_TYPES = ()
    FUNCTION = "save_images"
    OUTPUT_NODE = True
    CATEGORY = "image/animation"

    def save_images(self, images, fps, filename_prefix, lossless, quality, method,
                    num_frames=0, prompt=None, extra_pnginfo=None):
        def write(f, frames):
            frames[0].save(f, format="WEBP", save_all=True, duration=int(1000.0 / fps),
                           append_images=frames[1:],
                           exif=_webp_exif(frames[0], prompt, extra_pnginfo),
                           lossless=lossless, quality=quality,
                           method=self.COMPRESS_METHODS.get(method))

        return _save_animation(images, filename_prefix, "webp", write)


class SaveAnimatedPNG:
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "images": ("IMAGE",),
                "filename_prefix": ("STRING", {"default": "ComfyUI"}),
                "fps": ("FLOAT", {"default": 6.0, "min": 0.01, "max": 1000.0, "step": 0.01}),
                "compress_level": ("INT", {"default": 4, "min": 0, "max": 9}),
            },
            "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"},
        }

    RETURN_TYPES = ()
    FUNCTION = "save_images"
    OUTPUT_NODE = True
    CATEGORY = "image/animation"

    def save_images(self, images, fps, compress_level, filename_prefix="ComfyUI", prompt=None,
                    extra_pnginfo=None):
        def write(f, frames):
            frames[0].save(f, format="PNG", pnginfo=_apng_metadata(prompt, extra_pnginfo),
                           compress_level=compress_level, save_all=True,
                           duration=int(1000.0 / fps), append_images=frames[1:])

        return _save_animation(images, filename_prefix, "png", write)


NODES = [
    ("SaveAnimatedWEBP", SaveAnimatedWEBP, "SaveAnimatedWEBP", "comfy_extras.nodes_images"),
    ("SaveAnimatedPNG", SaveAnimatedPNG, "SaveAnimatedPNG", "comfy_extras.nodes_images"),
]
