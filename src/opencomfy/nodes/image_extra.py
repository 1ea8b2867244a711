"""More image nodes of ComfyUI's ``comfy_extras/nodes_images.py`` (noise, scaling to a
maximum side, resize-and-pad, saving SVG) and the Canny edge detector (``nodes_canny``).
"""

from __future__ import annotations

import json
import re
from xml.sax.saxutils import escape

import torch
import torch.nn.functional as F

from opencomfy.compat import folder_paths
from opencomfy.nodes.image_saving import save_metadata_enabled, write_numbered_file
from opencomfy.nodes.image_scaling import common_upscale
from opencomfy.nodes.v3_dynamic import V3DynamicNode
from opencomfy.nodes.v3_schema import node_entries

MAX_RESOLUTION = 16384
IMAGES_MODULE = "comfy_extras.nodes_images"


class ImageAddNoise:
    """Adds Gaussian noise (seeded, ``strength`` standard deviations) and clamps to 0..1."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "image": ("IMAGE",),
            "seed": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF,
                             "control_after_generate": True}),
            "strength": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 1.0, "step": 0.01}),
        }}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "repeat"
    CATEGORY = "image"

    def repeat(self, image, seed, strength):
        generator = torch.manual_seed(seed)
        noise = torch.randn(image.size(), generator=generator, device="cpu").to(image)
        return (torch.clamp(image + strength * noise, 0.0, 1.0),)


class ImageScaleToMaxDimension:
    """Scales so that the longer side is ``largest_size``, keeping the aspect ratio."""

    upscale_methods = ["area", "lanczos", "bilinear", "nearest-exact", "bilinear", "bicubic"]

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "image": ("IMAGE",),
            "upscale_method": (cls.upscale_methods,),
            "largest_size": ("INT", {"default": 512, "min": 0, "max": MAX_RESOLUTION, "step": 1}),
        }}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "upscale"
    CATEGORY = "image/upscaling"

    def upscale(self, image, upscale_method, largest_size):
        if largest_size < 1:
            raise ValueError("largest_size must be at least 1")
        height, width = image.shape[1], image.shape[2]
        if height > width:
            width, height = round(width / height * largest_size), largest_size
        elif width > height:
            width, height = largest_size, round(height / width * largest_size)
        else:
            width = height = largest_size
        planar = image.movedim(-1, 1)
        scaled = common_upscale(planar, max(width, 1), max(height, 1), upscale_method, "disabled")
        return (scaled.movedim(1, -1),)


class ResizeAndPadImage:
    """Fits the image inside the target size (aspect kept), centred on white or black."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "image": ("IMAGE",),
            "target_width": ("INT", {"default": 512, "min": 1, "max": MAX_RESOLUTION, "step": 1}),
            "target_height": ("INT", {"default": 512, "min": 1, "max": MAX_RESOLUTION, "step": 1}),
            "padding_color": (["white", "black"],),
            "interpolation": (["area", "bicubic", "nearest-exact", "bilinear", "lanczos"],),
        }}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "resize_and_pad"
    CATEGORY = "image/transform"

    def resize_and_pad(self, image, target_width, target_height, padding_color, interpolation):
        batch, height, width, channels = image.shape
        scale = min(target_width / width, target_height / height)
        new_width, new_height = max(1, int(width * scale)), max(1, int(height * scale))
        resized = common_upscale(image.movedim(-1, 1), new_width, new_height, interpolation,
                                 "disabled")
        fill = 1.0 if padding_color == "white" else 0.0
        padded = torch.full((batch, channels, target_height, target_width), fill,
                            dtype=image.dtype, device=image.device)
        top, left = (target_height - new_height) // 2, (target_width - new_width) // 2
        padded[:, :, top:top + new_height, left:left + new_width] = resized
        return (padded.movedim(1, -1),)


def _svg_documents(svg) -> list[bytes]:
    """The SVG documents of an SVG value: ComfyUI's object (``.data``: streams), bytes or text."""
    items = getattr(svg, "data", svg)
    if not isinstance(items, (list, tuple)):
        items = [items]
    documents = []
    for item in items:
        if hasattr(item, "getvalue"):
            item = item.getvalue()
        elif hasattr(item, "read"):
            item = item.read()
        if isinstance(item, str):
            item = item.encode("utf-8")
        if not isinstance(item, (bytes, bytearray)):
            raise ValueError(f"SaveSVGNode: expected SVG data, got {type(item).__name__}")
        documents.append(bytes(item))
    return documents


def _with_metadata(document: bytes, prompt, extra_pnginfo) -> bytes:
    """The document with the prompt and workflow in a ``<metadata>`` element after ``<svg>``."""
    if not save_metadata_enabled() or (prompt is None and not extra_pnginfo):
        return document
    fields = {}
    if prompt is not None:
        fields["prompt"] = prompt
    fields.update(extra_pnginfo or {})
    # CDATA cannot hold "]]>": escape instead, which reads back the same.
    block = f"<metadata>{escape(json.dumps(fields))}</metadata>"
    text = document.decode("utf-8", errors="replace")
    match = re.search(r"<svg\b[^>]*>", text)
    if match is None:
        return document
    return (text[:match.end()] + block + text[match.end():]).encode("utf-8")


def writer_of(data: bytes):
    """A ``write`` callback for :func:`write_numbered_file` that writes ``data``."""
    def write(handle) -> None:
        handle.write(data)
    return write


class SaveSVGNode:
    """Saves SVG documents to ``<prefix>_<counter>_.svg`` in the output folder."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"svg": ("SVG",),
                             "filename_prefix": ("STRING", {"default": "svg/ComfyUI"})},
                "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"}}

    RETURN_TYPES = ()
    FUNCTION = "save_svg"
    OUTPUT_NODE = True
    CATEGORY = "image/save"

    def save_svg(self, svg, filename_prefix="svg/ComfyUI", prompt=None, extra_pnginfo=None):
        output_dir = folder_paths.get_output_directory()
        target = folder_paths.resolve_save_target(filename_prefix, output_dir)
        results = []
        for index, document in enumerate(_svg_documents(svg)):
            data = _with_metadata(document, prompt, extra_pnginfo)
            stem = target.filename.replace("%batch_num%", str(index))
            name = write_numbered_file(target, stem=stem, extension="svg",
                                       write=writer_of(data))
            results.append({"filename": name, "subfolder": target.subfolder, "type": "output"})
        return {"ui": {"images": results}}


# -- Canny ----------------------------------------------------------------------------------

def _gaussian_1d(size: int, sigma: float, dtype) -> torch.Tensor:
    x = torch.arange(size, dtype=dtype) - size // 2
    kernel = torch.exp(-(x * x) / (2 * sigma * sigma))
    return kernel / kernel.sum()


# Neighbour offsets (dy, dx) of the eight gradient directions, 45 degrees apart, starting at
# +x and turning towards +y (image rows grow downwards).
_DIRECTIONS = [(0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1), (-1, 0), (-1, 1)]


def _neighbour(values: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """``values`` shifted so each pixel sees its (dy, dx) neighbour (zero past the border)."""
    padded = F.pad(values, (1, 1, 1, 1))
    height, width = values.shape[-2:]
    return padded[..., 1 + dy:1 + dy + height, 1 + dx:1 + dx + width]


def canny_edges(image: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """Binary Canny edges ``[B, 1, H, W]`` of ``[B, C, H, W]`` in 0..1 (kornia's method).

    Grayscale, a 5x5 Gaussian (sigma 1), normalised Sobel gradients, non-maximum suppression
    along the gradient rounded to 45 degrees, a double threshold, and hysteresis: weak edges
    are kept only when connected to strong ones.
    """
    if low > high:
        raise ValueError(f"low_threshold ({low}) must not be above high_threshold ({high})")
    if image.shape[1] >= 3:
        weights = torch.tensor([0.299, 0.587, 0.114], dtype=image.dtype, device=image.device)
        gray = (image[:, :3] * weights.view(1, 3, 1, 1)).sum(1, keepdim=True)
    else:
        gray = image[:, :1]
    g = _gaussian_1d(5, 1.0, image.dtype).to(image.device)
    blurred = F.pad(gray, (2, 2, 2, 2), mode="reflect")
    blurred = F.conv2d(F.conv2d(blurred, g.view(1, 1, 1, 5)), g.view(1, 1, 5, 1))
    sobel = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]],
                         dtype=image.dtype, device=image.device) / 8.0
    edge_padded = F.pad(blurred, (1, 1, 1, 1), mode="replicate")
    gx = F.conv2d(edge_padded, sobel.view(1, 1, 3, 3))
    gy = F.conv2d(edge_padded, sobel.t().contiguous().view(1, 1, 3, 3))
    magnitude = torch.sqrt(gx * gx + gy * gy + 1e-6)

    direction = (torch.round(torch.rad2deg(torch.atan2(gy, gx)) / 45) % 8).long()
    is_max = torch.ones_like(magnitude, dtype=torch.bool)
    for index, (dy, dx) in enumerate(_DIRECTIONS):
        # A pixel survives when it beats both neighbours along its gradient direction.
        forward = magnitude - _neighbour(magnitude, dy, dx)
        backward = magnitude - _neighbour(magnitude, -dy, -dx)
        along = (direction == index) | (direction == (index + 4) % 8)
        is_max &= ~along | ((forward > 0) & (backward > 0))
    magnitude = magnitude * is_max

    strong = magnitude > high
    weak = (magnitude > low) & ~strong
    while True:
        grown = strong | (weak & (F.max_pool2d(strong.to(image.dtype), 3, 1, 1) > 0))
        if torch.equal(grown, strong):
            return strong.to(image.dtype)
        strong = grown


class Canny(V3DynamicNode):
    """White Canny edges on black, as an RGB image."""

    NODE_ID = "Canny"
    CATEGORY = "image/preprocessors"
    RELATIVE_PYTHON_MODULE = "comfy_extras.nodes_canny"
    RETURN_TYPES = ("IMAGE",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "image": ("IMAGE", {}),
            "low_threshold": ("FLOAT", {"default": 0.4, "min": 0.01, "max": 0.99, "step": 0.01}),
            "high_threshold": ("FLOAT", {"default": 0.8, "min": 0.01, "max": 0.99, "step": 0.01}),
        }}

    def execute(self, image, low_threshold, high_threshold):
        edges = canny_edges(image.movedim(-1, 1).float(), low_threshold, high_threshold)
        return (edges.repeat(1, 3, 1, 1).movedim(1, -1).to(image.dtype),)


NODES = [
    ("ImageAddNoise", ImageAddNoise, "ImageAddNoise", IMAGES_MODULE),
    ("ImageScaleToMaxDimension", ImageScaleToMaxDimension, "ImageScaleToMaxDimension",
     IMAGES_MODULE),
    ("ResizeAndPadImage", ResizeAndPadImage, "ResizeAndPadImage", IMAGES_MODULE),
    ("SaveSVGNode", SaveSVGNode, "SaveSVGNode", IMAGES_MODULE),
    *node_entries([Canny], Canny.RELATIVE_PYTHON_MODULE),
]
