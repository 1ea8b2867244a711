"""ContextWindowsManual / WanContextWindowsManual (``comfy_extras.nodes_context_windows``):
a MODEL that evaluates long latents in overlapping windows (:mod:`opencomfy.diffusion.context_windows`).

Empty ``NODES`` without the optional diffusion extra, like :mod:`opencomfy.nodes.diffusion`.
"""

from __future__ import annotations

from opencomfy.diffusion import available
from opencomfy.nodes.v3_schema import V3SchemaNode

NODES_CONTEXT_WINDOWS = "comfy_extras.nodes_context_windows"
_SCHEDULES = ["standard_static", "standard_uniform", "looped_uniform", "batched"]
_FUSE = ["pyramid", "relative", "flat", "overlap-linear"]


def _inputs(length: dict, overlap: dict) -> dict:
    return {
        "model": ("MODEL", {}),
        "context_length": ("INT", length),
        "context_overlap": ("INT", overlap),
        "context_schedule": ("COMBO", {"multiselect": False, "options": list(_SCHEDULES)}),
        "context_stride": ("INT", {"default": 1, "min": 1}),
        "closed_loop": ("BOOLEAN", {"default": False}),
        "fuse_method": ("COMBO", {"default": "pyramid", "multiselect": False, "options": list(_FUSE)}),
    }


def _patched(model, length, overlap, schedule, stride, closed_loop, fuse, dim):
    from opencomfy.diffusion.context_windows import ContextWindows, patch_model

    if model is None:
        raise ValueError("context windows: the model input is empty")
    windows = ContextWindows(length=int(length), overlap=int(overlap), schedule=schedule, stride=int(stride),
                             closed_loop=bool(closed_loop), fuse=fuse, dim=int(dim))
    return (patch_model(model, windows),)


class ContextWindowsManual(V3SchemaNode):
    """Evaluate the latent in overlapping windows along one dimension (frames of a video latent,
    or the batch at dim 0), blending the windows where they overlap."""

    NODE_ID = "ContextWindowsManual"
    DISPLAY_NAME = "Context Windows (Manual)"
    CATEGORY = "context"
    RELATIVE_PYTHON_MODULE = NODES_CONTEXT_WINDOWS
    RETURN_TYPES = ("MODEL",)

    @classmethod
    def INPUT_TYPES(cls):
        required = _inputs({"default": 16, "min": 1}, {"default": 4, "min": 0})
        required["dim"] = ("INT", {"default": 0, "min": 0, "max": 5})
        return {"required": required}

    @classmethod
    def GET_NODE_INFO_V1(cls):
        return {**super().GET_NODE_INFO_V1(), "experimental": True}

    def execute(self, model, context_length, context_overlap, context_schedule, context_stride,
                closed_loop, fuse_method, dim):
        return _patched(model, context_length, context_overlap, context_schedule, context_stride,
                        closed_loop, fuse_method, dim)


class WanContextWindowsManual(ContextWindowsManual):
    """Context windows over the frames of a WAN latent (dim 2); the length and overlap are given
    in video frames and turned into latent frames (4 video frames per latent frame, plus the first)."""

    NODE_ID = "WanContextWindowsManual"
    DISPLAY_NAME = "WAN Context Windows (Manual)"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": _inputs({"default": 81, "min": 1, "max": 16384, "step": 4},
                                    {"default": 30, "min": 0})}

    def execute(self, model, context_length, context_overlap, context_schedule, context_stride,  # type: ignore[override]
                closed_loop, fuse_method):
        length = max((int(context_length) - 1) // 4 + 1, 1)
        overlap = max((int(context_overlap) - 1) // 4 + 1, 0)
        return _patched(model, length, overlap, context_schedule, context_stride, closed_loop, fuse_method, 2)


NODES: list = []

if available():
    NODES = [
        (cls.NODE_ID, cls, cls.DISPLAY_NAME, NODES_CONTEXT_WINDOWS)
        for cls in (ContextWindowsManual, WanContextWindowsManual)
    ]
