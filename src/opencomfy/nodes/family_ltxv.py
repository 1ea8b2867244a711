"""LTX-Video nodes that need no LTXV model: frame rate, image-to-video latents, keyframe guides,
the input preprocessing and the noise schedule (ComfyUI's ``comfy_extras.nodes_lt``).

LTXV's VAE turns ``8k + 1`` frames into ``k + 1`` latent frames of 128 channels at 1/32 of the
size. Guides (LTXVAddGuide) are extra latent frames appended after the video, their place in
time given by ``keyframe_idxs`` on the conditioning (pixel-space start/end coordinates of each
guide token); LTXVCropGuides removes them again after sampling.
"""

from __future__ import annotations

import io
import math

import numpy as np
import torch

from opencomfy.nodes.family_common import (MAX_RESOLUTION, FamilyCapabilityError, encode_video,
                                           first_option, resize_frames, set_options)
from opencomfy.nodes.v3_dynamic import V3DynamicNode

LTX = "comfy_extras.nodes_lt"
FAMILY = "LTX-Video"
CHANNELS = 128
VIDEO_CATEGORY = "conditioning/video_models"


def _noise_mask(latent: dict) -> torch.Tensor:
    """The latent's noise mask (a copy), or ones ``[B, 1, T, 1, 1]``: every frame sampled."""
    mask = latent.get("noise_mask")
    if mask is not None:
        return mask.clone()
    samples = latent["samples"]
    return torch.ones((samples.shape[0], 1, samples.shape[2], 1, 1))


def _keyframes(conditioning) -> tuple[torch.Tensor | None, int]:
    """(keyframe_idxs, how many guide latent frames they describe)."""
    idxs = first_option(conditioning, "keyframe_idxs")
    if idxs is None:
        return None, 0
    return idxs, int(torch.unique(idxs[:, 0, :, 0]).shape[0])


def _scale_factors(vae, node: str) -> tuple[int, int, int]:
    """(frames, height, width) per latent pixel, as an LTXV VAE declares them."""
    factors = getattr(vae, "downscale_index_formula", None)
    if not isinstance(factors, (tuple, list)) or len(factors) != 3:
        raise FamilyCapabilityError(
            f"{node} needs the {FAMILY} VAE (8 frames and 32x32 pixels per latent pixel); the VAE "
            f"given ({vae!r}) declares no video downscale. opencomfy cannot load {FAMILY} VAEs yet")
    return int(factors[0]), int(factors[1]), int(factors[2])


def _conditioning_pair(positive, negative, values: dict):
    return set_options(positive, values), set_options(negative, values)


class _LtxNode(V3DynamicNode):
    CATEGORY = VIDEO_CATEGORY
    RELATIVE_PYTHON_MODULE = LTX
    RETURN_TYPES = ("CONDITIONING", "CONDITIONING", "LATENT")
    RETURN_NAMES = ("positive", "negative", "latent")


class LTXVConditioning(_LtxNode):
    """Tell the model the video's frame rate (it conditions on it)."""

    NODE_ID = "LTXVConditioning"
    RETURN_TYPES = ("CONDITIONING", "CONDITIONING")
    RETURN_NAMES = ("positive", "negative")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"positive": ("CONDITIONING", {}), "negative": ("CONDITIONING", {}),
                             "frame_rate": ("FLOAT", {"default": 25.0, "min": 0.0, "max": 1000.0,
                                                      "step": 0.01})}}

    def execute(self, positive, negative, frame_rate):
        return _conditioning_pair(positive, negative, {"frame_rate": frame_rate})


class LTXVImgToVideo(_LtxNode):
    """An empty LTXV latent whose first frames are the encoded image, kept by the noise mask
    in proportion to ``strength``."""

    NODE_ID = "LTXVImgToVideo"

    @classmethod
    def INPUT_TYPES(cls):
        def size(default, minimum, step):
            return ("INT", {"default": default, "min": minimum, "max": MAX_RESOLUTION, "step": step})

        return {"required": {
            "positive": ("CONDITIONING", {}), "negative": ("CONDITIONING", {}), "vae": ("VAE", {}),
            "image": ("IMAGE", {}), "width": size(768, 64, 32), "height": size(512, 64, 32),
            "length": size(97, 9, 8), "batch_size": ("INT", {"default": 1, "min": 1, "max": 4096}),
            "strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0})}}

    def execute(self, positive, negative, vae, image, width, height, length, batch_size, strength):
        encoded = encode_video(vae, resize_frames(image, width, height), node=self.NODE_ID,
                               family=FAMILY, temporal=8, channels=CHANNELS)
        latent = torch.zeros([batch_size, CHANNELS, (length - 1) // 8 + 1, height // 32, width // 32])
        frames = min(encoded.shape[2], latent.shape[2])
        latent[:, :, :frames] = encoded[:, :, :frames]
        mask = torch.ones((batch_size, 1, latent.shape[2], 1, 1))
        mask[:, :, :frames] = 1.0 - strength
        return (positive, negative, {"samples": latent, "noise_mask": mask})


class LTXVImgToVideoInplace(V3DynamicNode):
    """Write an encoded image into the first frames of an existing LTXV latent (kept by the
    noise mask in proportion to ``strength``); ``bypass`` passes the latent through."""

    NODE_ID = "LTXVImgToVideoInplace"
    CATEGORY = VIDEO_CATEGORY
    RELATIVE_PYTHON_MODULE = LTX
    RETURN_TYPES = ("LATENT",)
    RETURN_NAMES = ("latent",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"vae": ("VAE", {}), "image": ("IMAGE", {}), "latent": ("LATENT", {}),
                             "strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0}),
                             "bypass": ("BOOLEAN", {"default": False})}}

    def execute(self, vae, image, latent, strength, bypass=False):
        if bypass:
            return (latent,)
        _, scale_h, scale_w = _scale_factors(vae, self.NODE_ID)
        samples = latent["samples"].clone()
        if samples.ndim != 5:
            raise ValueError(f"LTXVImgToVideoInplace needs a video latent [batch, channels, frames, "
                             f"height, width]; got shape {tuple(samples.shape)}")
        width, height = samples.shape[4] * scale_w, samples.shape[3] * scale_h
        if (image.shape[1], image.shape[2]) != (height, width):
            image = resize_frames(image, width, height)
        encoded = encode_video(vae, image, node=self.NODE_ID, family=FAMILY,
                               temporal=vae.downscale_index_formula[0], channels=samples.shape[1])
        frames = min(encoded.shape[2], samples.shape[2])
        samples[:, :, :frames] = encoded[:, :, :frames]
        mask = _noise_mask(latent)
        mask[:, :, :frames] = 1.0 - strength
        return ({"samples": samples, "noise_mask": mask},)


def guide_coordinates(guide: torch.Tensor, scale: tuple[int, int, int], frame_idx: int,
                      causal: bool) -> torch.Tensor:
    """Pixel-space (start, end) coordinates of each guide token: ``[B, 3, T*H*W, 2]`` over
    (frame, row, column). The first latent frame of a causal VAE stands for one frame, not
    ``scale[0]``: its start and end move back by ``scale[0] - 1`` (floored at 0)."""
    batch, _, frames, height, width = guide.shape
    grid = torch.meshgrid(torch.arange(frames), torch.arange(height), torch.arange(width), indexing="ij")
    start = torch.stack([axis.reshape(-1) for axis in grid])                  # [3, N]
    coords = torch.stack([start, start + 1], dim=-1).float()                  # [3, N, 2]
    coords = coords * torch.tensor(scale, dtype=torch.float32).view(3, 1, 1)
    if causal:
        coords[0] = (coords[0] + 1 - scale[0]).clamp(min=0)
    coords[0] += frame_idx
    return coords.unsqueeze(0).repeat(batch, 1, 1, 1)


class LTXVAddGuide(_LtxNode):
    """Append an image or clip as guide frames at ``frame_idx``: its latent goes after the
    video's, its position into ``keyframe_idxs``, and the noise mask keeps it by ``strength``."""

    NODE_ID = "LTXVAddGuide"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "positive": ("CONDITIONING", {}), "negative": ("CONDITIONING", {}), "vae": ("VAE", {}),
            "latent": ("LATENT", {}), "image": ("IMAGE", {}),
            "frame_idx": ("INT", {"default": 0, "min": -9999, "max": 9999}),
            "strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01})}}

    def execute(self, positive, negative, vae, latent, image, frame_idx, strength):
        scale = _scale_factors(vae, self.NODE_ID)
        step = scale[0]
        samples = latent["samples"]
        if samples.ndim != 5 or samples.shape[1] != CHANNELS:
            raise ValueError(f"LTXVAddGuide needs an LTXV video latent [batch, {CHANNELS}, frames, "
                             f"height, width]; got shape {tuple(samples.shape)}")
        noise_mask = _noise_mask(latent)
        _, _, length, latent_h, latent_w = samples.shape
        _, guides = _keyframes(positive)
        video_frames = length - guides             # latent frames of the video itself
        if frame_idx < 0:                          # counted back from the video's last frame
            frame_idx = max((video_frames - 1) * step + 1 + frame_idx, 0)
        kept = (image.shape[0] - 1) // step * step + 1
        causal = frame_idx == 0 or kept == 1
        frames = image[:kept]
        if not causal:
            # Encode a throwaway frame first, so the VAE's one-frame first latent is not ours.
            frames = torch.cat([frames[:1], frames], dim=0)
            frames = frames[:(frames.shape[0] - 1) // step * step + 1]
        pixels = resize_frames(frames, latent_w * scale[2], latent_h * scale[1])
        guide = encode_video(vae, pixels, node=self.NODE_ID, family=FAMILY, temporal=step,
                             channels=CHANNELS)
        if not causal:
            guide = guide[:, :, 1:]
        if kept > 1 and frame_idx != 0:            # a clip starts on a latent-frame boundary
            frame_idx = (frame_idx - 1) // step * step + 1
        latent_idx = (frame_idx + step - 1) // step
        if latent_idx + guide.shape[2] > video_frames:
            raise ValueError(f"LTXVAddGuide: a {guide.shape[2]}-latent-frame guide at frame "
                             f"{frame_idx} runs past the video's {video_frames} latent frames")
        positive = self._add_index(positive, guide, scale, frame_idx, causal)
        negative = self._add_index(negative, guide, scale, frame_idx, causal)
        keep = torch.full((noise_mask.shape[0], 1, guide.shape[2], noise_mask.shape[3],
                           noise_mask.shape[4]), 1.0 - strength)
        entry = {"pre_filter_count": guide.shape[2] * guide.shape[3] * guide.shape[4],
                 "strength": strength, "pixel_mask": None, "latent_shape": list(guide.shape[2:])}
        positive, negative = (
            set_options(c, {"guide_attention_entries": [*(first_option(c, "guide_attention_entries") or []),
                                                        entry]})
            for c in (positive, negative))
        return (positive, negative, {"samples": torch.cat([samples, guide.to(samples)], dim=2),
                                     "noise_mask": torch.cat([noise_mask, keep], dim=2)})

    @staticmethod
    def _add_index(conditioning, guide, scale, frame_idx, causal):
        existing, _ = _keyframes(conditioning)
        coords = guide_coordinates(guide, scale, frame_idx, causal)
        idxs = coords if existing is None else torch.cat([existing, coords], dim=2)
        return set_options(conditioning, {"keyframe_idxs": idxs})


class LTXVCropGuides(_LtxNode):
    """Remove the guide frames LTXVAddGuide appended (after sampling, before decoding)."""

    NODE_ID = "LTXVCropGuides"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"positive": ("CONDITIONING", {}), "negative": ("CONDITIONING", {}),
                             "latent": ("LATENT", {})}}

    def execute(self, positive, negative, latent):
        samples = latent["samples"].clone()
        noise_mask = _noise_mask(latent)
        _, guides = _keyframes(positive)
        if guides == 0:
            return (positive, negative, {"samples": samples, "noise_mask": noise_mask})
        cleared = {"keyframe_idxs": None, "guide_attention_entries": None}
        positive, negative = _conditioning_pair(positive, negative, cleared)
        return (positive, negative, {"samples": samples[:, :, :-guides],
                                     "noise_mask": noise_mask[:, :, :-guides]})


def h264_roundtrip(frame: torch.Tensor, crf: int) -> torch.Tensor:
    """One ``[H, W, 3]`` frame through an H.264 encode at quality ``crf`` and back (even sizes:
    4:2:0 chroma needs them), to give it the compression artefacts of LTXV's training videos."""
    import av

    pixels = (frame[:frame.shape[0] // 2 * 2, :frame.shape[1] // 2 * 2, :3] * 255.0).byte().cpu().numpy()
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=1, options={"crf": str(crf), "preset": "veryfast"})
        stream.height, stream.width = pixels.shape[0], pixels.shape[1]
        video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="rgb24")
        for packet in stream.encode(video_frame.reformat(format="yuv420p")):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    buffer.seek(0)
    with av.open(buffer, "r") as source:
        decoded = next(source.decode(video=0)).to_ndarray(format="rgb24")
    return torch.from_numpy(decoded).to(frame.dtype) / 255.0


class LTXVPreprocess(V3DynamicNode):
    """Compress each image as one H.264 frame (``img_compression`` is the CRF; 0 leaves it)."""

    NODE_ID = "LTXVPreprocess"
    CATEGORY = "image"
    RELATIVE_PYTHON_MODULE = LTX
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("output_image",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE", {}),
                             "img_compression": ("INT", {"default": 35, "min": 0, "max": 100})}}

    def execute(self, image, img_compression):
        if img_compression == 0:
            return (image,)
        if image.shape[1] < 2 or image.shape[2] < 2:
            raise ValueError("LTXVPreprocess needs images of at least 2x2 pixels")
        # libx264 takes CRF 0-51; ComfyUI's range goes to 100, where 51 is already the lowest quality.
        crf = min(img_compression, 51)
        return (torch.stack([h264_roundtrip(frame, crf) for frame in image]),)


def ltxv_sigmas(steps: int, max_shift: float, base_shift: float, stretch: bool, terminal: float,
                tokens: int = 4096) -> torch.Tensor:
    """LTXV's schedule: ``t`` from 1 to 0, shifted by ``e^s / (e^s + 1/t - 1)`` with ``s``
    linear in the token count (``base_shift`` at 1024, ``max_shift`` at 4096); with ``stretch``
    the non-zero sigmas are rescaled so that the last one is ``terminal``."""
    t = torch.linspace(1.0, 0.0, steps + 1)
    slope = (max_shift - base_shift) / (4096 - 1024)
    shift = math.exp(tokens * slope + base_shift - slope * 1024)
    sigmas = torch.where(t != 0, shift / (shift + (1 / t - 1)), torch.zeros_like(t))
    if stretch:
        nonzero = sigmas != 0
        one_minus = 1.0 - sigmas[nonzero]
        sigmas[nonzero] = 1.0 - one_minus * ((1.0 - terminal) / one_minus[-1])
    return sigmas


class LTXVScheduler(V3DynamicNode):
    """The LTXV noise schedule; the shift grows with the latent's size when one is given."""

    NODE_ID = "LTXVScheduler"
    CATEGORY = "sampling/custom_sampling/schedulers"
    RELATIVE_PYTHON_MODULE = LTX
    RETURN_TYPES = ("SIGMAS",)

    @classmethod
    def INPUT_TYPES(cls):
        shift = {"min": 0.0, "max": 100.0, "step": 0.01}
        return {"required": {"steps": ("INT", {"default": 20, "min": 1, "max": 10000}),
                             "max_shift": ("FLOAT", {"default": 2.05, **shift}),
                             "base_shift": ("FLOAT", {"default": 0.95, **shift}),
                             "stretch": ("BOOLEAN", {"default": True}),
                             "terminal": ("FLOAT", {"default": 0.1, "min": 0.0, "max": 0.99,
                                                    "step": 0.01})},
                "optional": {"latent": ("LATENT", {})}}

    def execute(self, steps, max_shift, base_shift, stretch, terminal, latent=None):
        tokens = 4096 if latent is None else math.prod(latent["samples"].shape[2:])
        return (ltxv_sigmas(steps, max_shift, base_shift, stretch, terminal, tokens),)


_CLASSES = [LTXVConditioning, LTXVImgToVideo, LTXVImgToVideoInplace, LTXVAddGuide, LTXVCropGuides, LTXVPreprocess,
            LTXVScheduler]

NODES = [(cls.NODE_ID, cls, cls.DISPLAY_NAME, cls.RELATIVE_PYTHON_MODULE) for cls in _CLASSES]
