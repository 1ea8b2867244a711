"""Conditioning nodes of SD-based special models: InstructPix2Pix, Stable Zero123 and SV3D,
the SD x4 upscaler and Lotus (ComfyUI's ``nodes_ip2p``, ``nodes_stable3d``,
``nodes_sdupscale`` and ``nodes_lotus``).

They encode the input image with the VAE and CLIP vision model they are given and put the
results where those models read them (``concat_latent_image``, ``concat_image``, camera
angles). LotusConditioning is a placeholder: see its docstring.
"""

from __future__ import annotations

import torch

from opencomfy.nodes.family_common import MAX_RESOLUTION, resize_frames, set_options
from opencomfy.nodes.image_scaling import repeat_to_batch_size
from opencomfy.nodes.v3_dynamic import V3DynamicNode

THREE_D = "comfy_extras.nodes_stable3d"
CONDITIONING_OUT = ("CONDITIONING", "CONDITIONING", "LATENT")
CONDITIONING_NAMES = ("positive", "negative", "latent")


def _angle(default: float, limit: float) -> tuple:
    return ("FLOAT", {"default": default, "min": -limit, "max": limit, "step": 0.1, "round": False})


class InstructPixToPixConditioning(V3DynamicNode):
    """The image to edit, encoded, rides along with both conditionings; the latent to sample
    from is zeros of the same shape."""

    NODE_ID = "InstructPixToPixConditioning"
    CATEGORY = "conditioning/instructpix2pix"
    RELATIVE_PYTHON_MODULE = "comfy_extras.nodes_ip2p"
    RETURN_TYPES = CONDITIONING_OUT
    RETURN_NAMES = CONDITIONING_NAMES

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"positive": ("CONDITIONING", {}), "negative": ("CONDITIONING", {}),
                             "vae": ("VAE", {}), "pixels": ("IMAGE", {})}}

    def execute(self, positive, negative, vae, pixels):
        # The VAE needs sizes that are multiples of 8: cut the excess evenly from both sides.
        height, width = (pixels.shape[1] // 8) * 8, (pixels.shape[2] // 8) * 8
        top, left = (pixels.shape[1] % 8) // 2, (pixels.shape[2] % 8) // 2
        pixels = pixels[:, top:top + height, left:left + width, :3]
        concat = vae.encode(pixels)
        values = {"concat_latent_image": concat}
        return (set_options(positive, values), set_options(negative, values),
                {"samples": torch.zeros_like(concat)})


def camera_embedding(elevation: float, azimuth: float) -> torch.Tensor:
    """Zero123's relative camera as ``[1, 1, 4]``: polar change (radians), sin and cos of the
    azimuth, and the fixed reference polar angle of 90 degrees."""
    elevation_t = torch.tensor([float(elevation)])
    azimuth_rad = torch.deg2rad(torch.tensor([float(azimuth)]))
    polar_change = torch.deg2rad(-elevation_t)   # polar angle is 90 - elevation; relative to 90
    reference = torch.deg2rad(torch.tensor([90.0]))
    return torch.stack([polar_change, torch.sin(azimuth_rad), torch.cos(azimuth_rad), reference],
                       dim=-1).unsqueeze(1)


def _encode_view(clip_vision, init_image, vae, width, height):
    """(CLIP image embedding ``[1, B, D]``, VAE latent of the image resized to the output)."""
    pooled = clip_vision.encode_image(init_image).image_embeds.unsqueeze(0)
    latent = vae.encode(resize_frames(init_image, width, height)[..., :3])
    return pooled, latent


class StableZero123_Conditioning(V3DynamicNode):  # noqa: N801 (ComfyUI's class name)
    """Stable Zero123: the input view's embedding joined with the camera change to render."""

    NODE_ID = "StableZero123_Conditioning"
    CATEGORY = "conditioning/3d_models"
    RELATIVE_PYTHON_MODULE = THREE_D
    RETURN_TYPES = CONDITIONING_OUT
    RETURN_NAMES = CONDITIONING_NAMES

    @classmethod
    def INPUT_TYPES(cls):
        size = {"default": 256, "min": 16, "max": MAX_RESOLUTION, "step": 8}
        return {"required": {
            "clip_vision": ("CLIP_VISION", {}), "init_image": ("IMAGE", {}), "vae": ("VAE", {}),
            "width": ("INT", size), "height": ("INT", size),
            "batch_size": ("INT", {"default": 1, "min": 1, "max": 4096}),
            "elevation": _angle(0.0, 180.0), "azimuth": _angle(0.0, 180.0)}}

    def execute(self, clip_vision, init_image, vae, width, height, batch_size, elevation, azimuth):
        pooled, latent = _encode_view(clip_vision, init_image, vae, width, height)
        camera = camera_embedding(elevation, azimuth).repeat(pooled.shape[0], pooled.shape[1], 1)
        positive = [[torch.cat([pooled, camera.to(pooled)], dim=-1), {"concat_latent_image": latent}]]
        negative = [[torch.zeros_like(pooled), {"concat_latent_image": torch.zeros_like(latent)}]]
        return (positive, negative, {"samples": torch.zeros([batch_size, 4, height // 8, width // 8])})


class StableZero123_Conditioning_Batched(StableZero123_Conditioning):  # noqa: N801
    """Stable Zero123 for a batch of views, the camera stepping by the increments per item."""

    NODE_ID = "StableZero123_Conditioning_Batched"

    @classmethod
    def INPUT_TYPES(cls):
        inputs = super().INPUT_TYPES()
        inputs["required"]["elevation_batch_increment"] = _angle(0.0, 180.0)
        inputs["required"]["azimuth_batch_increment"] = _angle(0.0, 180.0)
        return inputs

    def execute(self, clip_vision, init_image, vae, width, height, batch_size, elevation, azimuth,
                elevation_batch_increment=0.0, azimuth_batch_increment=0.0):
        pooled, latent = _encode_view(clip_vision, init_image, vae, width, height)
        cameras = torch.cat([camera_embedding(elevation + i * elevation_batch_increment,
                                              azimuth + i * azimuth_batch_increment)
                             for i in range(batch_size)], dim=0)
        cond = torch.cat([repeat_to_batch_size(pooled, batch_size), cameras.to(pooled)], dim=-1)
        positive = [[cond, {"concat_latent_image": latent}]]
        negative = [[torch.zeros_like(pooled), {"concat_latent_image": torch.zeros_like(latent)}]]
        latent_out = {"samples": torch.zeros([batch_size, 4, height // 8, width // 8]),
                      "batch_index": [0] * batch_size}
        return (positive, negative, latent_out)


class SV3D_Conditioning(V3DynamicNode):  # noqa: N801 (ComfyUI's class name)
    """SV3D: an orbit video around the object, one full turn at a fixed elevation."""

    NODE_ID = "SV3D_Conditioning"
    CATEGORY = "conditioning/3d_models"
    RELATIVE_PYTHON_MODULE = THREE_D
    RETURN_TYPES = CONDITIONING_OUT
    RETURN_NAMES = CONDITIONING_NAMES

    @classmethod
    def INPUT_TYPES(cls):
        size = {"default": 576, "min": 16, "max": MAX_RESOLUTION, "step": 8}
        return {"required": {
            "clip_vision": ("CLIP_VISION", {}), "init_image": ("IMAGE", {}), "vae": ("VAE", {}),
            "width": ("INT", size), "height": ("INT", size),
            "video_frames": ("INT", {"default": 21, "min": 1, "max": 4096}),
            "elevation": _angle(0.0, 90.0)}}

    def execute(self, clip_vision, init_image, vae, width, height, video_frames, elevation):
        pooled, latent = _encode_view(clip_vision, init_image, vae, width, height)
        step = 360 / (max(video_frames, 2) - 1)    # the last frame comes back to the first view
        angles = {"elevation": [elevation] * video_frames,
                  "azimuth": [i * step for i in range(video_frames)]}
        positive = [[pooled, {"concat_latent_image": latent, **angles}]]
        negative = [[torch.zeros_like(pooled), {"concat_latent_image": torch.zeros_like(latent),
                                                **angles}]]
        return (positive, negative,
                {"samples": torch.zeros([video_frames, 4, height // 8, width // 8])})


class SD_4XUpscale_Conditioning(V3DynamicNode):  # noqa: N801 (ComfyUI's class name)
    """The SD x4 upscaler's low-resolution input (pixels in -1..1 at a quarter of the output
    size) and noise augmentation, with a latent for the output size."""

    NODE_ID = "SD_4XUpscale_Conditioning"
    CATEGORY = "conditioning/upscale_diffusion"
    RELATIVE_PYTHON_MODULE = "comfy_extras.nodes_sdupscale"
    RETURN_TYPES = CONDITIONING_OUT
    RETURN_NAMES = CONDITIONING_NAMES

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "images": ("IMAGE", {}), "positive": ("CONDITIONING", {}),
            "negative": ("CONDITIONING", {}),
            "scale_ratio": ("FLOAT", {"default": 4.0, "min": 0.0, "max": 10.0, "step": 0.01}),
            "noise_augmentation": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.001})}}

    def execute(self, images, positive, negative, scale_ratio, noise_augmentation):
        width = max(1, round(images.shape[2] * scale_ratio))
        height = max(1, round(images.shape[1] * scale_ratio))
        if width < 4 or height < 4:
            raise ValueError(f"SD_4XUpscale_Conditioning: scale_ratio {scale_ratio} makes a "
                             f"{width}x{height} output, too small for the x4 upscaler (4x4 at least)")
        low_res = resize_frames(images * 2.0 - 1.0, width // 4, height // 4).movedim(-1, 1)
        values = {"concat_image": low_res, "noise_augmentation": noise_augmentation}
        latent = torch.zeros([images.shape[0], 4, height // 4, width // 4])
        return (set_options(positive, values), set_options(negative, values), {"samples": latent})


class LotusConditioning(V3DynamicNode):
    """Lotus depth/normal estimation runs on a fixed null-prompt conditioning: the output of
    the SD 2 text encoder for an empty prompt, which Lotus was trained with.

    A placeholder: opencomfy does not ship that embedding and has no input here to compute it
    from, so the node fails when run, saying so.
    """

    NODE_ID = "LotusConditioning"
    CATEGORY = "conditioning/lotus"
    RELATIVE_PYTHON_MODULE = "comfy_extras.nodes_lotus"
    RETURN_TYPES = ("CONDITIONING",)
    RETURN_NAMES = ("conditioning",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}}

    def execute(self):
        raise NotImplementedError(
            "LotusConditioning is not supported yet: it needs Lotus's fixed null-prompt embedding "
            "(the SD 2 OpenCLIP-H text encoder's output for an empty prompt), which opencomfy does "
            "not ship; encode an empty prompt with an SD 2.x CLIP (CLIPTextEncode) instead")


_CLASSES = [InstructPixToPixConditioning, StableZero123_Conditioning,
            StableZero123_Conditioning_Batched, SV3D_Conditioning, SD_4XUpscale_Conditioning,
            LotusConditioning]

NODES = [(cls.NODE_ID, cls, cls.DISPLAY_NAME, cls.RELATIVE_PYTHON_MODULE) for cls in _CLASSES]
