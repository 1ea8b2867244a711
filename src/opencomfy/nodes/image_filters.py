"""Pixel filters: invert, Gaussian blur, sharpen and palette quantization."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from opencomfy.nodes.v3_schema import V3SchemaNode


class ImageInvert:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",)}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "invert"
    CATEGORY = "image"

    def invert(self, image):
        return (1.0 - image,)


def gaussian_kernel(kernel_size: int, sigma: float, device=None) -> torch.Tensor:
    """A normalised 2-D Gaussian over [-1, 1]^2 (so sigma is relative to the radius)."""
    axis = torch.linspace(-1, 1, kernel_size, device=device)
    x, y = torch.meshgrid(axis, axis, indexing="ij")
    squared_distance = x * x + y * y
    kernel = torch.exp(-squared_distance / (2.0 * sigma * sigma))
    return kernel / kernel.sum()


def _convolve_reflect(image: torch.Tensor, kernel: torch.Tensor, radius: int) -> torch.Tensor:
    """Convolve every channel of a ``[B,H,W,C]`` image with one kernel, edges reflected."""
    channels = image.shape[-1]
    weights = kernel.repeat(channels, 1, 1).unsqueeze(1)
    planar = image.permute(0, 3, 1, 2)
    padded = F.pad(planar, (radius, radius, radius, radius), "reflect")
    return F.conv2d(padded, weights, groups=channels).permute(0, 2, 3, 1)


class ImageBlur:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "image": ("IMAGE",),
            "blur_radius": ("INT", {"default": 1, "min": 1, "max": 31, "step": 1}),
            "sigma": ("FLOAT", {"default": 1.0, "min": 0.1, "max": 10.0, "step": 0.1}),
        }}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "execute"
    CATEGORY = "image/postprocessing"

    def execute(self, image, blur_radius, sigma):
        if blur_radius == 0:
            return (image,)
        kernel = gaussian_kernel(blur_radius * 2 + 1, sigma, device=image.device)
        return (_convolve_reflect(image, kernel, blur_radius),)


class ImageSharpen:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "image": ("IMAGE",),
            "sharpen_radius": ("INT", {"default": 1, "min": 1, "max": 31, "step": 1}),
            "sigma": ("FLOAT", {"default": 1.0, "min": 0.1, "max": 10.0, "step": 0.01}),
            "alpha": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 5.0, "step": 0.01}),
        }}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "execute"
    CATEGORY = "image/postprocessing"

    def execute(self, image, sharpen_radius, sigma, alpha):
        if sharpen_radius == 0:
            return (image,)
        size = sharpen_radius * 2 + 1
        # Unsharp mask as one kernel: a negative, scaled Gaussian whose centre is raised so
        # that the weights sum to exactly 1 (flat areas keep their value).
        kernel = gaussian_kernel(size, sigma, device=image.device) * -(alpha * 10)
        kernel = kernel.to(dtype=image.dtype)
        centre = size // 2
        kernel[centre, centre] = kernel[centre, centre] - kernel.sum() + 1.0
        sharpened = _convolve_reflect(image, kernel, sharpen_radius)
        return (torch.clamp(sharpened, 0, 1),)


def _bayer_matrix(level: int) -> np.ndarray:
    """The normalised ordered-dither matrix of size 2^level (values centred on 0)."""
    if level == 0:
        return np.zeros((1, 1), "float32")
    q = 4 ** level
    m = q * _bayer_matrix(level - 1)
    return np.block([[m - 1.5, m + 0.5], [m + 1.5, m - 0.5]]) / q


class ImageQuantize(V3SchemaNode):
    """Reduces the palette to ``colors`` colours, optionally dithered (V3 in ComfyUI)."""

    NODE_ID = "ImageQuantize"
    RELATIVE_PYTHON_MODULE = "comfy_extras.nodes_post_processing"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "image": ("IMAGE", {}),
            "colors": ("INT", {"default": 256, "min": 1, "max": 256, "step": 1}),
            "dither": ("COMBO", {"multiselect": False, "options": [
                "none", "floyd-steinberg", "bayer-2", "bayer-4", "bayer-8", "bayer-16"]}),
        }}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "execute"
    CATEGORY = "image/postprocessing"

    @staticmethod
    def bayer(picture: Image.Image, palette: Image.Image, order: int) -> Image.Image:
        """Ordered dithering: add a tiled threshold matrix, then map to the palette."""
        entries = palette.getpalette()
        if entries is None:
            raise ValueError("ordered dithering needs a palette (mode P) image")
        colors = len(entries) // 3
        spread = 2 * 256 / colors
        matrix = torch.from_numpy(spread * _bayer_matrix(int(math.log2(order))) + 0.5)
        pixels = torch.from_numpy(np.array(picture).astype(np.float32))
        reps_h = math.ceil(pixels.shape[0] / matrix.shape[0])
        reps_w = math.ceil(pixels.shape[1] / matrix.shape[1])
        tiled = matrix.tile(reps_h, reps_w).unsqueeze(-1)
        pixels.add_(tiled[:pixels.shape[0], :pixels.shape[1]]).clamp_(0, 255)
        dithered = Image.fromarray(pixels.to(dtype=torch.uint8).numpy())
        return dithered.quantize(palette=palette, dither=Image.Dither.NONE)

    def execute(self, image, colors, dither):
        result = image.clone()
        for index in range(image.shape[0]):
            # ComfyUI truncates (x * 255) to 8 bits here, unlike the save path's clip.
            rgb = (image[index, ..., :3].clamp(0, 1) * 255).to(torch.uint8).numpy()
            picture = Image.fromarray(rgb)
            # Pillow dithers only against a given palette, so find the palette first
            # (python-pillow/Pillow#5836).
            palette = picture.quantize(colors=colors)
            if dither == "none":
                quantized = picture.quantize(palette=palette, dither=Image.Dither.NONE)
            elif dither == "floyd-steinberg":
                quantized = picture.quantize(palette=palette, dither=Image.Dither.FLOYDSTEINBERG)
            else:
                quantized = self.bayer(picture, palette, int(dither.split("-")[-1]))
            array = np.array(quantized.convert("RGB"))
            result[index, ..., :3] = torch.tensor(array).float() / 255
        return (result,)


NODES = [
    ("ImageInvert", ImageInvert, "Invert Image", "nodes"),
    ("ImageBlur", ImageBlur, "Image Blur", "comfy_extras.nodes_post_processing"),
    ("ImageQuantize", ImageQuantize, "Image Quantize", "comfy_extras.nodes_post_processing"),
    ("ImageSharpen", ImageSharpen, "Image Sharpen", "comfy_extras.nodes_post_processing"),
]
