"""VAE nodes (ComfyUI's ``nodes.py``): latents <-> images, inpainting and tiled variants."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


class VAEDecode:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "samples": ("LATENT", {"tooltip": "Latent to turn into pixels."}),
            "vae": ("VAE", {"tooltip": "Autoencoder matching the model that made the latent."}),
        }}

    RETURN_TYPES = ("IMAGE",)
    OUTPUT_TOOLTIPS = ("The image batch.",)
    FUNCTION = "decode"
    CATEGORY = "latent"
    DESCRIPTION = "Turns latents into RGB images with the VAE's decoder."

    def decode(self, vae, samples):
        return (vae.decode(samples["samples"]),)


class VAEEncode:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"pixels": ("IMAGE",), "vae": ("VAE",)}}

    RETURN_TYPES = ("LATENT",)
    FUNCTION = "encode"
    CATEGORY = "latent"

    def encode(self, vae, pixels):
        return ({"samples": vae.encode(pixels[:, :, :, :3])},)


class VAEEncodeForInpaint:
    """Encode with the masked pixels set to grey, and attach the (grown) mask as noise_mask."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "pixels": ("IMAGE",), "vae": ("VAE",), "mask": ("MASK",),
            "grow_mask_by": ("INT", {"default": 6, "min": 0, "max": 64, "step": 1}),
        }}

    RETURN_TYPES = ("LATENT",)
    FUNCTION = "encode"
    CATEGORY = "latent/inpaint"

    def encode(self, vae, pixels, mask, grow_mask_by=6):
        r = vae.downscale_ratio
        height, width = (pixels.shape[1] // r) * r, (pixels.shape[2] // r) * r
        mask = F.interpolate(mask.reshape(-1, 1, mask.shape[-2], mask.shape[-1]).float(),
                             size=(pixels.shape[1], pixels.shape[2]), mode="bilinear")
        pixels = pixels.clone()
        if (height, width) != tuple(pixels.shape[1:3]):
            top, left = (pixels.shape[1] % r) // 2, (pixels.shape[2] % r) // 2
            pixels = pixels[:, top:top + height, left:left + width, :]
            mask = mask[:, :, top:top + height, left:left + width]
        hard = mask.round()
        if grow_mask_by == 0:
            grown = hard
        else:
            kernel = torch.ones(1, 1, grow_mask_by, grow_mask_by)
            grown = F.conv2d(hard, kernel, padding=math.ceil((grow_mask_by - 1) / 2)).clamp(0, 1)
        keep = (1.0 - hard).squeeze(1)
        pixels = pixels[..., :3]
        pixels = (pixels - 0.5) * keep.unsqueeze(-1) + 0.5
        latent = vae.encode(pixels)
        return ({"samples": latent, "noise_mask": grown[:, :, :height, :width].round()},)


class VAEDecodeTiled:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "samples": ("LATENT",), "vae": ("VAE",),
            "tile_size": ("INT", {"default": 512, "min": 64, "max": 4096, "step": 32}),
            "overlap": ("INT", {"default": 64, "min": 0, "max": 4096, "step": 32}),
            "temporal_size": ("INT", {"default": 64, "min": 8, "max": 4096, "step": 4,
                                      "tooltip": "Video VAEs: frames per decoded chunk. Image "
                                                 "VAEs ignore it."}),
            "temporal_overlap": ("INT", {"default": 8, "min": 4, "max": 4096, "step": 4,
                                         "tooltip": "Video VAEs: frames shared by neighbouring "
                                                    "chunks. Image VAEs ignore it."}),
        }}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "decode"
    CATEGORY = "_for_testing"

    def decode(self, vae, samples, tile_size, overlap=64, temporal_size=64, temporal_overlap=8):
        if tile_size < overlap * 4:
            overlap = tile_size // 4
        r = vae.downscale_ratio
        return (vae.decode_tiled(samples["samples"], tile=tile_size // r, overlap=overlap // r),)


class VAEEncodeTiled:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "pixels": ("IMAGE",), "vae": ("VAE",),
            "tile_size": ("INT", {"default": 512, "min": 64, "max": 4096, "step": 64}),
            "overlap": ("INT", {"default": 64, "min": 0, "max": 4096, "step": 32}),
            "temporal_size": ("INT", {"default": 64, "min": 8, "max": 4096, "step": 4,
                                      "tooltip": "Video VAEs: frames per encoded chunk. Image "
                                                 "VAEs ignore it."}),
            "temporal_overlap": ("INT", {"default": 8, "min": 4, "max": 4096, "step": 4,
                                         "tooltip": "Video VAEs: frames shared by neighbouring "
                                                    "chunks. Image VAEs ignore it."}),
        }}

    RETURN_TYPES = ("LATENT",)
    FUNCTION = "encode"
    CATEGORY = "_for_testing"

    def encode(self, vae, pixels, tile_size, overlap, temporal_size=64, temporal_overlap=8):
        return ({"samples": vae.encode_tiled(pixels[:, :, :, :3], tile=tile_size, overlap=overlap)},)


NODES = [
    ("VAEDecode", VAEDecode, "VAE Decode", "nodes"),
    ("VAEEncode", VAEEncode, "VAE Encode", "nodes"),
    ("VAEEncodeForInpaint", VAEEncodeForInpaint, "VAE Encode (for Inpainting)", "nodes"),
    ("VAEDecodeTiled", VAEDecodeTiled, "VAE Decode (Tiled)", "nodes"),
    ("VAEEncodeTiled", VAEEncodeTiled, "VAE Encode (Tiled)", "nodes"),
]
