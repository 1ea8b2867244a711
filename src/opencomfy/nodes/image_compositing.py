"""Combining images: blend modes, masked pasting, and alpha channel split/join."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from opencomfy.nodes.image_scaling import common_upscale, repeat_to_batch_size
from opencomfy.nodes.v3_schema import V3SchemaNode

MAX_RESOLUTION = 16384


def match_alpha(destination: torch.Tensor, source: torch.Tensor):
    """Give ``source`` the channel count of ``destination`` (drop alpha, or add opaque alpha).

    ComfyUI's ``node_helpers.image_alpha_fix`` pads the *destination* instead in the second
    case, which leaves the two still mismatched (RGBA + RGB fails); we pad the source.
    """
    if destination.shape[-1] < source.shape[-1]:
        source = source[..., :destination.shape[-1]]
    elif destination.shape[-1] > source.shape[-1]:
        source = F.pad(source, (0, 1))
        source[..., -1] = 1.0
    return destination, source


def composite(destination: torch.Tensor, source: torch.Tensor, x: int, y: int,
              mask: torch.Tensor | None = None, multiplier: int = 8,
              resize_source: bool = False) -> torch.Tensor:
    """Paste ``source`` into ``destination`` (both channels-first) at (x, y), in place.

    ``x``/``y`` are in pixels; ``multiplier`` converts them to tensor cells (8 for latents,
    1 for images). ``mask`` (0..1, any size) is stretched over the source; where it is 1 the
    source wins. The part of the source outside the destination is ignored.
    """
    source = source.to(destination.device)
    if resize_source:
        source = F.interpolate(source, size=(destination.shape[-2], destination.shape[-1]),
                               mode="bilinear")
    source = repeat_to_batch_size(source, destination.shape[0])
    src_h, src_w = source.shape[-2], source.shape[-1]
    dst_h, dst_w = destination.shape[-2], destination.shape[-1]

    x = max(-src_w * multiplier, min(x, dst_w * multiplier))
    y = max(-src_h * multiplier, min(y, dst_h * multiplier))
    left, top = x // multiplier, y // multiplier

    if mask is None:
        mask = torch.ones_like(source)
    else:
        mask = mask.to(destination.device, copy=True)
        mask = F.interpolate(mask.reshape((-1, 1, mask.shape[-2], mask.shape[-1])),
                             size=(src_h, src_w), mode="bilinear")
        mask = repeat_to_batch_size(mask, source.shape[0])
        if mask.ndim < source.ndim:
            mask = mask.unsqueeze(1)

    # The overlap, in destination cells and in source cells.
    d_left, d_top = max(left, 0), max(top, 0)
    d_right, d_bottom = min(left + src_w, dst_w), min(top + src_h, dst_h)
    if d_right <= d_left or d_bottom <= d_top:
        return destination
    s_left, s_top = d_left - left, d_top - top
    width, height = d_right - d_left, d_bottom - d_top

    weight = mask[..., s_top:s_top + height, s_left:s_left + width]
    pasted = source[..., s_top:s_top + height, s_left:s_left + width]
    under = destination[..., d_top:d_bottom, d_left:d_right]
    destination[..., d_top:d_bottom, d_left:d_right] = (
        weight * pasted + (torch.ones_like(weight) - weight) * under)
    return destination


class ImageCompositeMasked:
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "destination": ("IMAGE",),
                "source": ("IMAGE",),
                "x": ("INT", {"default": 0, "min": 0, "max": MAX_RESOLUTION, "step": 1}),
                "y": ("INT", {"default": 0, "min": 0, "max": MAX_RESOLUTION, "step": 1}),
                "resize_source": ("BOOLEAN", {"default": False}),
            },
            "optional": {"mask": ("MASK",)},
        }

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "execute"
    CATEGORY = "image"

    def execute(self, destination, source, x, y, resize_source, mask=None):
        destination, source = match_alpha(destination, source)
        planar = destination.clone().movedim(-1, 1)
        output = composite(planar, source.movedim(-1, 1), x, y, mask, 1, resize_source)
        return (output.movedim(1, -1),)


class ImageBlend(V3SchemaNode):
    """Blends image2 over image1 with a blend mode, mixed in by ``blend_factor`` (V3 in ComfyUI)."""

    NODE_ID = "ImageBlend"
    RELATIVE_PYTHON_MODULE = "comfy_extras.nodes_post_processing"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "image1": ("IMAGE", {}),
            "image2": ("IMAGE", {}),
            "blend_factor": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 1.0, "step": 0.01}),
            "blend_mode": ("COMBO", {"multiselect": False, "options": [
                "normal", "multiply", "screen", "overlay", "soft_light", "difference"]}),
        }}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "execute"
    CATEGORY = "image/postprocessing"

    def execute(self, image1, image2, blend_factor, blend_mode):
        image1, image2 = match_alpha(image1, image2)
        image2 = image2.to(image1.device)
        if image1.shape != image2.shape:
            image2 = common_upscale(image2.permute(0, 3, 1, 2), image1.shape[2], image1.shape[1],
                                    upscale_method="bicubic", crop="center").permute(0, 2, 3, 1)
        blended = self.blend_mode(image1, image2, blend_mode)
        blended = image1 * (1 - blend_factor) + blended * blend_factor
        return (torch.clamp(blended, 0, 1),)

    @classmethod
    def blend_mode(cls, img1, img2, mode):
        """The blend of image2 over image1 before mixing by blend_factor."""
        if mode == "normal":
            return img2
        if mode == "multiply":
            return img1 * img2
        if mode == "screen":
            return 1 - (1 - img1) * (1 - img2)
        if mode == "overlay":
            return torch.where(img1 <= 0.5, 2 * img1 * img2, 1 - 2 * (1 - img1) * (1 - img2))
        if mode == "soft_light":
            return torch.where(img2 <= 0.5, img1 - (1 - 2 * img2) * img1 * (1 - img1),
                               img1 + (2 * img2 - 1) * (cls.g(img1) - img1))
        if mode == "difference":
            return img1 - img2  # signed, as ComfyUI (the final clamp cuts negatives)
        raise ValueError(f"Unsupported blend mode: {mode}")

    @classmethod
    def g(cls, x):
        """The W3C soft-light helper D(x)."""
        return torch.where(x <= 0.25, ((16 * x - 12) * x + 4) * x, torch.sqrt(x))


def _resize_mask(mask: torch.Tensor, size) -> torch.Tensor:
    return F.interpolate(mask.reshape((-1, 1, mask.shape[-2], mask.shape[-1])),
                         size=(size[0], size[1]), mode="bilinear").squeeze(1)


class SplitImageWithAlpha:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",)}}

    RETURN_TYPES = ("IMAGE", "MASK")
    FUNCTION = "execute"
    CATEGORY = "mask/compositing"

    def execute(self, image):
        rgb = image[..., :3]
        if image.shape[-1] > 3:
            alpha = image[..., 3]
        else:
            alpha = torch.ones_like(image[..., 0])
        # A MASK is 1 where the image is transparent.
        return (rgb.clone(), 1.0 - alpha)


class JoinImageWithAlpha:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",), "alpha": ("MASK",)}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "execute"
    CATEGORY = "mask/compositing"

    def execute(self, image, alpha):
        opacity = 1.0 - _resize_mask(alpha, image.shape[1:])
        # Counted after the reshape, so a 2-D [H, W] mask is one mask, not H of them.
        batch_size = min(len(image), len(opacity))
        out = [torch.cat((image[i][:, :, :3], opacity[i].unsqueeze(2)), dim=2)
               for i in range(batch_size)]
        return (torch.stack(out),)


NODES = [
    ("ImageBlend", ImageBlend, "Image Blend", "comfy_extras.nodes_post_processing"),
    ("ImageCompositeMasked", ImageCompositeMasked, "ImageCompositeMasked",
     "comfy_extras.nodes_mask"),
    ("SplitImageWithAlpha", SplitImageWithAlpha, "Split Image with Alpha",
     "comfy_extras.nodes_compositing"),
    ("JoinImageWithAlpha", JoinImageWithAlpha, "Join Image with Alpha",
     "comfy_extras.nodes_compositing"),
]
