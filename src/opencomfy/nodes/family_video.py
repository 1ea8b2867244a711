"""HunyuanVideo and Cosmos latent/conditioning nodes, and the video area conditioning
(ComfyUI's ``comfy_extras.nodes_hunyuan``, ``nodes_cosmos`` and ``nodes_video_model``).

HunyuanVideo's VAE packs 4 frames per latent frame (16 channels, 1/8 size); Cosmos 1's packs 8
(16 channels, 1/8 size); Cosmos Predict2 uses Wan 2.1's (4 frames). Frames are encoded by the VAE
the node is given, which must declare that temporal compression.
"""

from __future__ import annotations

import torch

from opencomfy.nodes.family_common import (MAX_RESOLUTION, encode_tokens, encode_video,
                                           latent_format, resize_frames, set_options,
                                           tokenize_towers, tokenize_with, zeros_video_latent)
from opencomfy.nodes.v3_dynamic import V3DynamicNode

HUNYUAN = "comfy_extras.nodes_hunyuan"
PROMPT = ("STRING", {"multiline": True, "dynamicPrompts": True})


def _size(default: int, minimum: int = 16, step: int = 16) -> tuple:
    return ("INT", {"default": default, "min": minimum, "max": MAX_RESOLUTION, "step": step})


BATCH = ("INT", {"default": 1, "min": 1, "max": 4096})


class HunyuanImageToVideo:
    """HunyuanVideo image-to-video. ``v1 (concat)`` passes the encoded start frames and a mask
    as concat inputs; ``v2 (replace)`` writes them into the latent and keeps them with the noise
    mask; ``custom`` passes them as ``ref_latent``."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"positive": ("CONDITIONING",), "vae": ("VAE",),
                             "width": _size(848), "height": _size(480), "length": _size(53, 1, 4),
                             "batch_size": BATCH,
                             "guidance_type": (["v1 (concat)", "v2 (replace)", "custom"],)},
                "optional": {"start_image": ("IMAGE",)}}

    RETURN_TYPES = ("CONDITIONING", "LATENT")
    RETURN_NAMES = ("positive", "latent")
    FUNCTION = "encode"
    CATEGORY = "conditioning/video_models"

    def encode(self, positive, vae, width, height, length, batch_size, guidance_type,
               start_image=None):
        latent = zeros_video_latent(batch_size, 16, length, height, width, temporal=4, spatial=8)
        out: dict = {}
        if start_image is not None:
            start = resize_frames(start_image[:length, :, :, :3], width, height)
            encoded = encode_video(vae, start, node="HunyuanImageToVideo", family="HunyuanVideo",
                                   temporal=4, channels=16)
            mask = torch.ones((1, 1, latent.shape[2], encoded.shape[-2], encoded.shape[-1]))
            mask[:, :, :(start.shape[0] - 1) // 4 + 1] = 0.0
            if guidance_type == "v1 (concat)":
                values: dict = {"concat_latent_image": encoded, "concat_mask": mask}
            elif guidance_type == "v2 (replace)":
                values = {"guiding_frame_index": 0}
                latent[:, :, :encoded.shape[2]] = encoded[:, :, :latent.shape[2]]
                out["noise_mask"] = mask
            else:
                values = {"ref_latent": encoded}
            positive = set_options(positive, values)
        out["samples"] = latent
        return (positive, out)


class TextEncodeHunyuanVideo_ImageToVideo:  # noqa: N801 (ComfyUI's class name)
    """HunyuanVideo I2V prompt: the llava-llama-3 encoder reads the prompt with the image's
    CLIP vision tokens interleaved (``image_interleave``: higher favours the text).

    Needs a text encoder whose tokenizer takes ``image_embeds``; opencomfy cannot load that one
    yet, so with its own CLIPs the node fails clearly. A pack's encoder applies its own
    image-to-video chat template.
    """

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"clip": ("CLIP",), "clip_vision_output": ("CLIP_VISION_OUTPUT",),
                             "prompt": PROMPT,
                             "image_interleave": ("INT", {"default": 2, "min": 1, "max": 512})}}

    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "encode"
    CATEGORY = "advanced/conditioning"

    def encode(self, clip, clip_vision_output, prompt, image_interleave):
        projected = getattr(clip_vision_output, "mm_projected", None)
        if projected is None:
            raise ValueError("TextEncodeHunyuanVideo_ImageToVideo needs a CLIP vision output with "
                             "multimodal projected tokens (from the llava-llama-3 vision tower); "
                             "this one has none")
        tokens = tokenize_with(clip, prompt, node="TextEncodeHunyuanVideo_ImageToVideo",
                               family="HunyuanVideo (llava-llama-3)",
                               capability="reads image tokens alongside the prompt",
                               image_embeds=projected, image_interleave=image_interleave)
        return (encode_tokens(clip, tokens),)


class CLIPTextEncodeHunyuanDiT:
    """Hunyuan-DiT prompt: a BERT text and an mT5-XL text, each to its own tower."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"clip": ("CLIP",), "bert": PROMPT, "mt5xl": PROMPT}}

    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "encode"
    CATEGORY = "advanced/conditioning"

    def encode(self, clip, bert, mt5xl):
        family = "Hunyuan-DiT (BERT + mT5-XL)"
        tokens = tokenize_towers(clip, bert, ("bert", "mt5xl"), node="CLIPTextEncodeHunyuanDiT",
                                 family=family)
        tokens["mt5xl"] = clip.tokenize(mt5xl)["mt5xl"]
        return (encode_tokens(clip, tokens),)


class HunyuanRefinerLatent:
    """HunyuanImage 2.1 refiner: the latent to refine rides along as the concat input, with
    noise augmentation; sampling starts from a 32-channel empty latent of its size."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"positive": ("CONDITIONING",), "negative": ("CONDITIONING",),
                             "latent": ("LATENT",),
                             "noise_augmentation": ("FLOAT", {"default": 0.10, "min": 0.0,
                                                              "max": 1.0, "step": 0.01})}}

    RETURN_TYPES = ("CONDITIONING", "CONDITIONING", "LATENT")
    RETURN_NAMES = ("positive", "negative", "latent")
    FUNCTION = "execute"
    CATEGORY = "sd"

    def execute(self, positive, negative, latent, noise_augmentation):
        samples = latent["samples"]
        if samples.ndim != 5:
            raise ValueError(f"HunyuanRefinerLatent needs a video-shaped latent [batch, channels, "
                             f"frames, height, width]; got shape {tuple(samples.shape)}")
        values = {"concat_latent_image": samples, "noise_augmentation": noise_augmentation}
        empty = torch.zeros([samples.shape[0], 32, *samples.shape[-3:]])
        return (set_options(positive, values), set_options(negative, values), {"samples": empty})


def _encode_padded(vae, image, width, height, length, *, padding: int, node: str, family: str,
                   temporal: int) -> torch.Tensor:
    """Encode frames padded with grey up to a whole 8-frame group (plus ``padding`` groups,
    capped at ``length``), keeping the latent frames the real frames fill."""
    pixels = resize_frames(image[..., :3], width, height)
    count = min(pixels.shape[0], length)
    padded_length = min(length, ((count - 1) // 8 + 1 + padding) * 8 - 7)
    padded = torch.full((padded_length, height, width, 3), 0.5)
    padded[:count] = pixels[:count]
    encoded = encode_video(vae, padded, node=node, family=family, temporal=temporal, channels=16)
    return encoded[:, :, :(count - 1) // 8 + 1]


class _CosmosImageToVideo(V3DynamicNode):
    """Start and/or end frames encoded into the ends of an empty latent, kept by the mask."""

    CATEGORY = "conditioning/inpaint"
    RELATIVE_PYTHON_MODULE = "comfy_extras.nodes_cosmos"
    RETURN_TYPES = ("LATENT",)
    DEFAULTS = (1280, 704, 121, 8)
    TEMPORAL = 8
    FAMILY = "Cosmos 1"
    # Frames still to generate start from the raw latent of zero (Predict2), or from zero.
    LATENT_FORMAT: str | None = None

    @classmethod
    def INPUT_TYPES(cls):
        width, height, length, step = cls.DEFAULTS
        return {"required": {"vae": ("VAE", {}), "width": _size(width), "height": _size(height),
                             "length": _size(length, 1, step), "batch_size": BATCH},
                "optional": {"start_image": ("IMAGE", {}), "end_image": ("IMAGE", {})}}

    def execute(self, vae, width, height, length, batch_size, start_image=None, end_image=None):
        latent = zeros_video_latent(1, 16, length, height, width, temporal=self.TEMPORAL, spatial=8)
        if start_image is None and end_image is None:
            return ({"samples": latent},)
        mask = torch.ones([1, 1, latent.shape[2], latent.shape[-2], latent.shape[-1]])
        common = {"node": self.NODE_ID, "family": self.FAMILY, "temporal": self.TEMPORAL}
        if start_image is not None:
            encoded = _encode_padded(vae, start_image, width, height, length, padding=1, **common)
            latent[:, :, :encoded.shape[2]] = encoded
            mask[:, :, :encoded.shape[2]] = 0.0
        if end_image is not None:
            encoded = _encode_padded(vae, end_image, width, height, length, padding=0, **common)
            latent[:, :, -encoded.shape[2]:] = encoded
            mask[:, :, -encoded.shape[2]:] = 0.0
        if self.LATENT_FORMAT:
            latent = latent_format(self.LATENT_FORMAT).process_out(latent) * mask + latent * (1.0 - mask)
        repeat = (batch_size,) + (1,) * (latent.ndim - 1)
        return ({"samples": latent.repeat(repeat), "noise_mask": mask.repeat(repeat)},)


class CosmosImageToVideoLatent(_CosmosImageToVideo):
    NODE_ID = "CosmosImageToVideoLatent"


class CosmosPredict2ImageToVideoLatent(_CosmosImageToVideo):
    NODE_ID = "CosmosPredict2ImageToVideoLatent"
    DEFAULTS = (848, 480, 93, 4)
    TEMPORAL = 4
    FAMILY = "Cosmos Predict2 (Wan 2.1 VAE)"
    LATENT_FORMAT = "Wan21"


class ConditioningSetAreaPercentageVideo:
    """Limit conditioning to a box in space and time, in fractions of the video's size."""

    @classmethod
    def INPUT_TYPES(cls):
        def fraction(default):
            return ("FLOAT", {"default": default, "min": 0, "max": 1.0, "step": 0.01})

        return {"required": {"conditioning": ("CONDITIONING",), "width": fraction(1.0),
                             "height": fraction(1.0), "temporal": fraction(1.0), "x": fraction(0),
                             "y": fraction(0), "z": fraction(0),
                             "strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 10.0,
                                                    "step": 0.01})}}

    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "append"
    CATEGORY = "conditioning"

    def append(self, conditioning, width, height, temporal, x, y, z, strength):
        area = ("percentage", temporal, height, width, z, y, x)
        return (set_options(conditioning, {"area": area, "strength": strength,
                                           "set_area_to_bounds": False}),)


NODES = [
    ("HunyuanImageToVideo", HunyuanImageToVideo, "HunyuanImageToVideo", HUNYUAN),
    ("TextEncodeHunyuanVideo_ImageToVideo", TextEncodeHunyuanVideo_ImageToVideo,
     "TextEncodeHunyuanVideo_ImageToVideo", HUNYUAN),
    ("CLIPTextEncodeHunyuanDiT", CLIPTextEncodeHunyuanDiT, "CLIPTextEncodeHunyuanDiT", HUNYUAN),
    ("HunyuanRefinerLatent", HunyuanRefinerLatent, "HunyuanRefinerLatent", HUNYUAN),
    *[(cls.NODE_ID, cls, None, cls.RELATIVE_PYTHON_MODULE)
      for cls in (CosmosImageToVideoLatent, CosmosPredict2ImageToVideoLatent)],
    ("ConditioningSetAreaPercentageVideo", ConditioningSetAreaPercentageVideo,
     "ConditioningSetAreaPercentageVideo", "comfy_extras.nodes_video_model"),
]
