"""Wan video nodes that need no Wan model: the latents and image conditioning of image-to-video,
first/last frame, Fun control/inpaint, VACE, Phantom and camera workflows (ComfyUI's
``comfy_extras.nodes_wan``).

Wan 2.1's VAE turns ``4k + 1`` frames of ``H x W`` into ``k + 1`` latent frames of 16 channels
at ``H/8 x W/8`` (the first frame alone, then four at a time); Wan 2.2's 5B VAE gives 48
channels at ``H/16 x W/16``. Empty latents are made in those shapes; frames are encoded by the
VAE the node is given, which must be that video VAE (see
:func:`opencomfy.nodes.family_common.encode_video`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from opencomfy.nodes.family_common import (MAX_RESOLUTION, encode_video, latent_format,
                                           resize_frames, set_options, zeros_video_latent)
from opencomfy.nodes.v3_dynamic import V3DynamicNode

WAN = "comfy_extras.nodes_wan"
WAN21 = "Wan 2.1"
CHANNELS = 16


def _size(default: int, minimum: int = 16, step: int = 16) -> tuple:
    return ("INT", {"default": default, "min": minimum, "max": MAX_RESOLUTION, "step": step})


BATCH = ("INT", {"default": 1, "min": 1, "max": 4096})


class _WanVideo(V3DynamicNode):
    """Base: positive, negative, vae, size, length, batch; returns the two conditionings and
    an empty Wan 2.1 latent."""

    CATEGORY = "conditioning/video_models"
    RELATIVE_PYTHON_MODULE = WAN
    RETURN_TYPES = ("CONDITIONING", "CONDITIONING", "LATENT")
    RETURN_NAMES = ("positive", "negative", "latent")
    OPTIONAL: dict = {}

    @classmethod
    def INPUT_TYPES(cls):
        required = {"positive": ("CONDITIONING", {}), "negative": ("CONDITIONING", {}),
                    "vae": ("VAE", {}), "width": _size(832), "height": _size(480),
                    "length": _size(81, 1, 4), "batch_size": BATCH}
        inputs: dict = {"required": required}
        if cls.OPTIONAL:
            inputs["optional"] = {name: (kind, {}) for name, kind in cls.OPTIONAL.items()}
        return inputs

    def _encode(self, vae, frames):
        return encode_video(vae, frames, node=self.NODE_ID, family=WAN21, temporal=4,
                            channels=CHANNELS)


def _empty(batch_size, length, height, width, channels=CHANNELS, spatial=8) -> torch.Tensor:
    return zeros_video_latent(batch_size, channels, length, height, width, temporal=4,
                              spatial=spatial)


def _both(positive, negative, values: dict, *, append: bool = False):
    return set_options(positive, values, append=append), set_options(negative, values, append=append)


def _with_clip_vision(positive, negative, clip_vision_output):
    if clip_vision_output is None:
        return positive, negative
    return _both(positive, negative, {"clip_vision_output": clip_vision_output})


def _pixel_mask_to_latent(mask: torch.Tensor) -> torch.Tensor:
    """A per-pixel-frame mask ``[1, 1, 4T, h, w]`` -> ``[1, 4, T, h, w]``: the four frames of each
    latent frame become four channels (the first latent frame's one frame counts four times)."""
    return mask.view(1, mask.shape[2] // 4, 4, mask.shape[3], mask.shape[4]).transpose(1, 2)


class WanImageToVideo(_WanVideo):
    """Image-to-video: the start frames, then grey, encoded as the concat latent; the mask marks
    the latent frames the start frames fill."""

    NODE_ID = "WanImageToVideo"
    OPTIONAL = {"clip_vision_output": "CLIP_VISION_OUTPUT", "start_image": "IMAGE"}

    def execute(self, positive, negative, vae, width, height, length, batch_size,
                start_image=None, clip_vision_output=None):
        latent = _empty(batch_size, length, height, width)
        if start_image is not None:
            start = resize_frames(start_image[:length], width, height)
            video = torch.full((length, height, width, start.shape[-1]), 0.5, dtype=start.dtype)
            video[:start.shape[0]] = start
            concat = self._encode(vae, video)
            mask = torch.ones((1, 1, latent.shape[2], concat.shape[-2], concat.shape[-1]))
            mask[:, :, :(start.shape[0] - 1) // 4 + 1] = 0.0
            positive, negative = _both(positive, negative, {"concat_latent_image": concat,
                                                            "concat_mask": mask})
        positive, negative = _with_clip_vision(positive, negative, clip_vision_output)
        return (positive, negative, {"samples": latent})


class WanFirstLastFrameToVideo(_WanVideo):
    """Start and/or end frames with grey between, encoded; both images' CLIP vision states are
    joined when both are given."""

    NODE_ID = "WanFirstLastFrameToVideo"
    OPTIONAL = {"clip_vision_start_image": "CLIP_VISION_OUTPUT",
                "clip_vision_end_image": "CLIP_VISION_OUTPUT",
                "start_image": "IMAGE", "end_image": "IMAGE"}

    def execute(self, positive, negative, vae, width, height, length, batch_size,
                start_image=None, end_image=None, clip_vision_start_image=None,
                clip_vision_end_image=None):
        return _first_last(self, positive, negative, vae, width, height, length, batch_size,
                           start_image, end_image, clip_vision_start_image, clip_vision_end_image)


def _first_last(node: _WanVideo, positive, negative, vae, width, height, length, batch_size,
                start_image, end_image, clip_vision_start_image, clip_vision_end_image):
    """WanFirstLastFrameToVideo's work (WanFunInpaintToVideo shares it)."""
    latent = _empty(batch_size, length, height, width)
    video = torch.full((length, height, width, 3), 0.5)
    mask = torch.ones((1, 1, latent.shape[2] * 4, latent.shape[-2], latent.shape[-1]))
    if start_image is not None:
        start = resize_frames(start_image[:length], width, height)[..., :3]
        video[:start.shape[0]] = start
        # The first latent frame holds one pixel frame but four mask slots.
        mask[:, :, :start.shape[0] + 3] = 0.0
    if end_image is not None:
        end = resize_frames(end_image[-length:], width, height)[..., :3]
        video[-end.shape[0]:] = end
        mask[:, :, -end.shape[0]:] = 0.0
    concat = node._encode(vae, video)
    positive, negative = _both(positive, negative, {"concat_latent_image": concat,
                                                    "concat_mask": _pixel_mask_to_latent(mask)})
    vision = clip_vision_start_image
    if clip_vision_end_image is not None:
        vision = clip_vision_end_image if vision is None else _join_vision(vision, clip_vision_end_image)
    positive, negative = _with_clip_vision(positive, negative, vision)
    return (positive, negative, {"samples": latent})


def _join_vision(first, second):
    """One CLIP_VISION_OUTPUT whose penultimate states are both images' tokens in a row."""
    from opencomfy.diffusion.clip_vision import ClipVisionOutput

    joined = ClipVisionOutput()
    joined.penultimate_hidden_states = torch.cat([first.penultimate_hidden_states,
                                                  second.penultimate_hidden_states], dim=-2)
    return joined


class WanFunInpaintToVideo(_WanVideo):
    """Wan Fun inpainting: first/last frame conditioning with one CLIP vision output."""

    NODE_ID = "WanFunInpaintToVideo"
    OPTIONAL = {"clip_vision_output": "CLIP_VISION_OUTPUT", "start_image": "IMAGE",
                "end_image": "IMAGE"}

    def execute(self, positive, negative, vae, width, height, length, batch_size,
                start_image=None, end_image=None, clip_vision_output=None):
        return _first_last(self, positive, negative, vae, width, height, length, batch_size,
                           start_image, end_image, clip_vision_output, None)


def _fun_concat(batch_size, length, height, width) -> torch.Tensor:
    """The Fun models' 32-channel concat latent before any frame is encoded: both halves the
    raw latent that the normalised zero maps back to."""
    empty = _empty(batch_size, length, height, width)
    return latent_format("Wan21").process_out(empty).repeat(1, 2, 1, 1, 1)


class WanFunControlToVideo(_WanVideo):
    """Wan Fun control: the control video's latent in channels 0-15 and the start frames' in
    16-31 of the concat latent."""

    NODE_ID = "WanFunControlToVideo"
    OPTIONAL = {"clip_vision_output": "CLIP_VISION_OUTPUT", "start_image": "IMAGE",
                "control_video": "IMAGE"}

    def execute(self, positive, negative, vae, width, height, length, batch_size,
                start_image=None, clip_vision_output=None, control_video=None):
        latent = _empty(batch_size, length, height, width)
        concat = _fun_concat(batch_size, length, height, width)
        frames = concat.shape[2]
        if start_image is not None:
            encoded = self._encode(vae, resize_frames(start_image[:length], width, height))
            concat[:, CHANNELS:, :encoded.shape[2]] = encoded[:, :, :frames]
        if control_video is not None:
            encoded = self._encode(vae, resize_frames(control_video[:length], width, height))
            concat[:, :CHANNELS, :encoded.shape[2]] = encoded[:, :, :frames]
        positive, negative = _both(positive, negative, {"concat_latent_image": concat})
        positive, negative = _with_clip_vision(positive, negative, clip_vision_output)
        return (positive, negative, {"samples": latent})


class Wan22FunControlToVideo(_WanVideo):
    """Wan 2.2 Fun control: control latent plus a pixel mask (channel 16 on), and an optional
    reference image appended to ``reference_latents``."""

    NODE_ID = "Wan22FunControlToVideo"
    OPTIONAL = {"ref_image": "IMAGE", "control_video": "IMAGE"}

    def execute(self, positive, negative, vae, width, height, length, batch_size, ref_image=None,
                control_video=None):
        latent = _empty(batch_size, length, height, width)
        concat = _fun_concat(batch_size, length, height, width)
        mask = torch.ones((1, 1, latent.shape[2] * 4, latent.shape[-2], latent.shape[-1]))
        reference = None
        if ref_image is not None:
            reference = self._encode(vae, resize_frames(ref_image[:1], width, height))
        if control_video is not None:
            encoded = self._encode(vae, resize_frames(control_video[:length], width, height))
            concat[:, :CHANNELS, :encoded.shape[2]] = encoded[:, :, :concat.shape[2]]
        positive, negative = _both(positive, negative, {
            "concat_latent_image": concat, "concat_mask": _pixel_mask_to_latent(mask),
            "concat_mask_index": CHANNELS})
        if reference is not None:
            positive, negative = _both(positive, negative, {"reference_latents": [reference]},
                                       append=True)
        return (positive, negative, {"samples": latent})


class WanVaceToVideo(_WanVideo):
    """VACE: the control video split by the mask into kept and regenerated parts (each encoded),
    a per-8x8-pixel mask at latent resolution, and an optional reference image in front.
    ``trim_latent`` says how many latent frames the reference adds (TrimVideoLatent cuts them)."""

    NODE_ID = "WanVaceToVideo"
    RETURN_TYPES = ("CONDITIONING", "CONDITIONING", "LATENT", "INT")
    RETURN_NAMES = ("positive", "negative", "latent", "trim_latent")

    @classmethod
    def INPUT_TYPES(cls):
        inputs = super().INPUT_TYPES()
        inputs["required"]["strength"] = ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1000.0,
                                                    "step": 0.01})
        inputs["optional"] = {"control_video": ("IMAGE", {}), "control_masks": ("MASK", {}),
                              "reference_image": ("IMAGE", {})}
        return inputs

    def execute(self, positive, negative, vae, width, height, length, batch_size, strength,
                control_video=None, control_masks=None, reference_image=None):
        if width % 8 or height % 8:
            raise ValueError(f"WanVaceToVideo needs a width and height that are multiples of 8 "
                             f"(the VACE mask has one channel per pixel of an 8x8 block); got "
                             f"{width}x{height}")
        latent_length = (length - 1) // 4 + 1
        if control_video is None:
            video = torch.full((length, height, width, 3), 0.5)
        else:
            video = resize_frames(control_video[:length], width, height)[..., :3]
            if video.shape[0] < length:   # pad with grey frames up to the length
                video = F.pad(video, (0, 0, 0, 0, 0, 0, 0, length - video.shape[0]), value=0.5)
        if control_masks is None:
            mask = torch.ones((length, height, width, 1))
        else:
            mask = control_masks.unsqueeze(1) if control_masks.ndim == 3 else control_masks
            mask = resize_frames(mask[:length].movedim(1, -1), width, height)
            if mask.shape[0] < length:    # frames past the mask's end are regenerated
                mask = F.pad(mask, (0, 0, 0, 0, 0, 0, 0, length - mask.shape[0]), value=1.0)
        centred = video - 0.5
        inactive = self._encode(vae, centred * (1 - mask) + 0.5)
        reactive = self._encode(vae, centred * mask + 0.5)
        control = torch.cat((inactive, reactive), dim=1)
        trim = 0
        if reference_image is not None:
            ref = self._encode(vae, resize_frames(reference_image[:1], width, height)[..., :3])
            ref = torch.cat([ref, latent_format("Wan21").process_out(torch.zeros_like(ref))], dim=1)
            control = torch.cat((ref, control), dim=2)
            trim = ref.shape[2]
        # Each latent pixel covers 8x8 pixels: those 64 mask values become 64 channels.
        h8, w8 = height // 8, width // 8
        mask = mask[..., 0].reshape(length, h8, 8, w8, 8).permute(2, 4, 0, 1, 3)
        mask = mask.reshape(64, length, h8, w8)
        mask = F.interpolate(mask.unsqueeze(0), size=(latent_length, h8, w8), mode="nearest-exact")[0]
        if trim:
            mask = torch.cat((torch.zeros_like(mask[:, :trim]), mask), dim=1)
        values = {"vace_frames": [control], "vace_mask": [mask.unsqueeze(0)],
                  "vace_strength": [strength]}
        positive, negative = _both(positive, negative, values, append=True)
        latent = torch.zeros([batch_size, CHANNELS, latent_length + trim, h8, w8])
        return (positive, negative, {"samples": latent}, trim)


class WanPhantomSubjectToVideo(_WanVideo):
    """Phantom: each subject image encoded on its own, appended along time. Gives a negative
    with the subjects (text-only negative) and one with zeros in their place."""

    NODE_ID = "WanPhantomSubjectToVideo"
    RETURN_TYPES = ("CONDITIONING", "CONDITIONING", "CONDITIONING", "LATENT")
    RETURN_NAMES = ("positive", "negative_text", "negative_img_text", "latent")
    OPTIONAL = {"images": "IMAGE"}

    def execute(self, positive, negative, vae, width, height, length, batch_size, images=None):
        latent = _empty(batch_size, length, height, width)
        negative_text = negative
        if images is not None:
            frames = resize_frames(images[:length], width, height)[..., :3]
            subjects = torch.cat([self._encode(vae, frame.unsqueeze(0)) for frame in frames], dim=2)
            positive = set_options(positive, {"time_dim_concat": subjects})
            negative_text = set_options(negative, {"time_dim_concat": subjects})
            blank = latent_format("Wan21").process_out(torch.zeros_like(subjects))
            negative = set_options(negative, {"time_dim_concat": blank})
        return (positive, negative_text, negative, {"samples": latent})


class WanCameraImageToVideo(_WanVideo):
    """Image-to-video with a camera path (WanCameraEmbedding) for the Fun camera models."""

    NODE_ID = "WanCameraImageToVideo"
    OPTIONAL = {"clip_vision_output": "CLIP_VISION_OUTPUT", "start_image": "IMAGE",
                "camera_conditions": "WAN_CAMERA_EMBEDDING"}

    def execute(self, positive, negative, vae, width, height, length, batch_size,
                start_image=None, clip_vision_output=None, camera_conditions=None):
        latent = _empty(batch_size, length, height, width)
        if start_image is not None:
            concat = latent_format("Wan21").process_out(_empty(batch_size, length, height, width))
            encoded = self._encode(vae, resize_frames(start_image[:length], width, height))
            concat[:, :, :encoded.shape[2]] = encoded[:, :, :concat.shape[2]]
            positive, negative = _both(positive, negative, {"concat_latent_image": concat})
        if camera_conditions is not None:
            positive, negative = _both(positive, negative, {"camera_conditions": camera_conditions})
        positive, negative = _with_clip_vision(positive, negative, clip_vision_output)
        return (positive, negative, {"samples": latent})


class Wan22ImageToVideoLatent(V3DynamicNode):
    """Wan 2.2 5B image-to-video: the start frames encoded into the first latent frames (kept
    by the noise mask), the rest the latent of zero."""

    NODE_ID = "Wan22ImageToVideoLatent"
    CATEGORY = "conditioning/inpaint"
    RELATIVE_PYTHON_MODULE = WAN
    RETURN_TYPES = ("LATENT",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"vae": ("VAE", {}), "width": _size(1280, 32, 32),
                             "height": _size(704, 32, 32), "length": _size(49, 1, 4),
                             "batch_size": BATCH},
                "optional": {"start_image": ("IMAGE", {})}}

    def execute(self, vae, width, height, length, batch_size, start_image=None):
        latent = _empty(1, length, height, width, channels=48, spatial=16)
        if start_image is None:
            return ({"samples": latent},)
        mask = torch.ones([1, 1, latent.shape[2], latent.shape[-2], latent.shape[-1]])
        encoded = encode_video(vae, resize_frames(start_image[:length], width, height),
                               node=self.NODE_ID, family="Wan 2.2 (5B)", temporal=4, channels=48)
        latent[:, :, :encoded.shape[2]] = encoded[:, :, :latent.shape[2]]
        mask[:, :, :encoded.shape[2]] = 0.0
        # Frames still to generate start from the raw latent that the normalised zero maps to.
        latent = latent_format("Wan22").process_out(latent) * mask + latent * (1.0 - mask)
        repeat = (batch_size,) + (1,) * (latent.ndim - 1)
        return ({"samples": latent.repeat(repeat), "noise_mask": mask.repeat(repeat)},)


class TrimVideoLatent(V3DynamicNode):
    """Drop the first ``trim_amount`` latent frames (e.g. a VACE reference frame)."""

    NODE_ID = "TrimVideoLatent"
    CATEGORY = "latent/video"
    RELATIVE_PYTHON_MODULE = WAN
    RETURN_TYPES = ("LATENT",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"samples": ("LATENT", {}),
                             "trim_amount": ("INT", {"default": 0, "min": 0, "max": 99999})}}

    def execute(self, samples, trim_amount):
        tensor = samples["samples"]
        if tensor.ndim != 5:
            raise ValueError(f"TrimVideoLatent needs a video latent [batch, channels, frames, "
                             f"height, width]; this one has shape {tuple(tensor.shape)}")
        out = dict(samples)
        out["samples"] = tensor[:, :, trim_amount:]
        return (out,)


_CLASSES = [WanImageToVideo, WanFirstLastFrameToVideo, WanFunInpaintToVideo, WanFunControlToVideo,
            Wan22FunControlToVideo, WanVaceToVideo, WanPhantomSubjectToVideo, WanCameraImageToVideo,
            Wan22ImageToVideoLatent, TrimVideoLatent]

NODES = [(cls.NODE_ID, cls, cls.DISPLAY_NAME, cls.RELATIVE_PYTHON_MODULE) for cls in _CLASSES]
