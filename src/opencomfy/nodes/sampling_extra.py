"""Extra sampling nodes of the optional ``diffusion`` extra: two SAMPLER builders (ComfyUI's
``comfy_extras.nodes_advanced_samplers``) and the video CFG ramps (``nodes_video_model``).

* SamplerEulerCFGpp: Euler with CFG++, in the library's formulation (``euler_cfg_pp``) or the
  alternative one, which steps along ``x - 2 * guided + unguided``.
* SamplerLCMUpscale: LCM steps that enlarge the latent between steps, so a small latent ends
  ``scale_ratio`` times larger.
* VideoLinearCFGGuidance / VideoTriangleCFGGuidance: the CFG scale varies over the batch (the
  frames of a video model), from ``min_cfg`` to the sampler's cfg linearly or as a triangle.

Empty ``NODES`` without the extra, like :mod:`opencomfy.nodes.diffusion`.
"""

from __future__ import annotations

import torch

from opencomfy.diffusion import available
from opencomfy.nodes.v3_schema import V3SchemaNode

ADVANCED_SAMPLERS = "comfy_extras.nodes_advanced_samplers"
VIDEO_MODEL = "comfy_extras.nodes_video_model"
UPSCALE_METHODS = ["bislerp", "nearest-exact", "bilinear", "area", "bicubic"]


# -- samplers ----------------------------------------------------------------------------------

def euler_cfg_pp_alternative(denoise, x, sigmas, *, noise=None, callback=None):
    """Euler with CFG++, alternative form: the step direction is that of the guided prediction
    mirrored around the unguided one, ``(x - 2 * guided + unguided) / sigma``."""
    for i in range(len(sigmas) - 1):
        s, s_next = float(sigmas[i]), float(sigmas[i + 1])
        x0 = denoise(x, s)
        direction = (x - 2 * x0 + denoise.last_uncond) / s
        x = x + direction * (s_next - s)
        if callback is not None:
            callback(i, x, x0)
    return x


def lcm_upscale_sizes(height: int, width: int, steps: int, total_upscale: float,
                      upscale_steps: int | None) -> list[tuple[int, int]]:
    """The (height, width) the latent takes after each of the first steps: ``upscale_steps``
    enlargements, evenly spaced factors ending at ``total_upscale`` (by default about half the
    steps, at least one; at most one more than there are steps, the extra one never reached)."""
    if upscale_steps is None:
        points = max((steps + 1) // 2 + 1, 2)
    else:
        points = min(upscale_steps + 1, steps + 2)
    factors = torch.linspace(1.0, total_upscale, points, dtype=torch.float64)[1:].tolist()
    return [(round(height * f), round(width * f)) for f in factors]


def sample_lcm_upscale(model, x, sigmas, extra_args=None, callback=None, disable=None,
                       total_upscale=2.0, upscale_method="bislerp", upscale_steps=None):
    """LCM (jump to x0, re-noise to the next sigma) with the x0 resized before re-noising."""
    from opencomfy.nodes.image_scaling import common_upscale

    extra_args = extra_args or {}
    seed = extra_args.get("seed")
    generator = torch.Generator(device="cpu").manual_seed(0 if seed is None else int(seed))
    sizes = lcm_upscale_sizes(x.shape[-2], x.shape[-1], len(sigmas) - 1, total_upscale, upscale_steps)
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        if callback is not None:
            callback({"x": x, "i": i, "sigma": sigmas[i], "sigma_hat": sigmas[i], "denoised": denoised})
        x = denoised
        if i < len(sizes):
            height, width = sizes[i]
            x = common_upscale(x, width, height, upscale_method, "disabled")
        if sigmas[i + 1] > 0:
            # The resized latent needs noise of its own size: draw it fresh, seeded.
            fresh = torch.randn(x.shape, generator=generator, device="cpu").to(x.device, x.dtype)
            x = x + fresh * sigmas[i + 1]
    return x


class SamplerEulerCFGpp(V3SchemaNode):
    """Euler with CFG++ as a SAMPLER (``regular``: the KSampler's euler_cfg_pp)."""

    NODE_ID = "SamplerEulerCFGpp"
    DISPLAY_NAME = "SamplerEulerCFG++"
    CATEGORY = "_for_testing"
    RELATIVE_PYTHON_MODULE = ADVANCED_SAMPLERS
    RETURN_TYPES = ("SAMPLER",)
    FUNCTION = "get_sampler"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"version": ("COMBO", {"multiselect": False,
                                                   "options": ["regular", "alternative"]})}}

    @classmethod
    def GET_NODE_INFO_V1(cls):
        return {**super().GET_NODE_INFO_V1(), "experimental": True}

    def get_sampler(self, version):
        from opencomfy.diffusion.sampler_objects import KSAMPLER, ksampler

        if version == "alternative":
            # Named as the CFG++ Euler so the run keeps the negative evaluated at cfg 1 and
            # draws no noise, as that sampler does.
            return (KSAMPLER(euler_cfg_pp_alternative, native=True, name="euler_cfg_pp"),)
        if version != "regular":
            raise ValueError(f"SamplerEulerCFGpp: unknown version {version!r} (regular or alternative)")
        return (ksampler("euler_cfg_pp"),)


class SamplerLCMUpscale(V3SchemaNode):
    """LCM sampling that grows the latent to ``scale_ratio`` times its size over the first
    ``scale_steps`` steps (-1: over about half of them)."""

    NODE_ID = "SamplerLCMUpscale"
    CATEGORY = "sampling/custom_sampling/samplers"
    RELATIVE_PYTHON_MODULE = ADVANCED_SAMPLERS
    RETURN_TYPES = ("SAMPLER",)
    FUNCTION = "get_sampler"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "scale_ratio": ("FLOAT", {"default": 1.0, "min": 0.1, "max": 20.0, "step": 0.01}),
            "scale_steps": ("INT", {"default": -1, "min": -1, "max": 1000, "step": 1}),
            "upscale_method": ("COMBO", {"multiselect": False, "options": list(UPSCALE_METHODS)}),
        }}

    def get_sampler(self, scale_ratio, scale_steps, upscale_method):
        from opencomfy.diffusion.sampler_objects import KSAMPLER

        if upscale_method not in UPSCALE_METHODS:
            raise ValueError(f"SamplerLCMUpscale: unknown upscale_method {upscale_method!r}")
        options = {"total_upscale": float(scale_ratio), "upscale_method": upscale_method,
                   "upscale_steps": None if scale_steps < 0 else int(scale_steps)}
        return (KSAMPLER(sample_lcm_upscale, options, name="lcm_upscale"),)


# -- video CFG ramps ---------------------------------------------------------------------------

def _per_sample(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return values.reshape((like.shape[0],) + (1,) * (like.ndim - 1))


def linear_cfg_scales(batch: int, min_cfg: float, cond_scale: float) -> torch.Tensor:
    """One CFG scale per batch entry, evenly from ``min_cfg`` (first) to ``cond_scale`` (last)."""
    return torch.linspace(min_cfg, cond_scale, batch)


def triangle_cfg_scales(batch: int, min_cfg: float, cond_scale: float) -> torch.Tensor:
    """One CFG scale per batch entry: ``min_cfg`` at both ends, ``cond_scale`` in the middle,
    linear in between (a triangle wave of period one over positions 0..1)."""
    position = torch.linspace(0.0, 1.0, batch)
    triangle = 2 * (position - torch.floor(position + 0.5)).abs()
    return triangle * (cond_scale - min_cfg) + min_cfg


class _VideoCFG:
    RETURN_TYPES = ("MODEL",)
    FUNCTION = "patch"
    CATEGORY = "sampling/video_models"
    SCALES = staticmethod(linear_cfg_scales)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",),
                             "min_cfg": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 100.0, "step": 0.5,
                                                  "round": 0.01})}}

    def patch(self, model, min_cfg):
        scales_for = type(self).SCALES

        def cfg_function(args):
            cond, uncond = args["cond"], args["uncond"]
            scales = scales_for(cond.shape[0], float(min_cfg), float(args["cond_scale"]))
            scale = _per_sample(scales.to(cond.device, cond.dtype), cond)
            return uncond + scale * (cond - uncond)

        m = model.clone()
        m.set_model_sampler_cfg_function(cfg_function)
        return (m,)


class VideoLinearCFGGuidance(_VideoCFG):
    """CFG that rises linearly over the frames, from ``min_cfg`` to the sampler's cfg."""


class VideoTriangleCFGGuidance(_VideoCFG):
    """CFG that rises from ``min_cfg`` to the sampler's cfg at the middle frame and back."""

    SCALES = staticmethod(triangle_cfg_scales)


NODES: list = []

if available():
    NODES = [
        ("SamplerEulerCFGpp", SamplerEulerCFGpp, "SamplerEulerCFG++", ADVANCED_SAMPLERS),
        ("SamplerLCMUpscale", SamplerLCMUpscale, None, ADVANCED_SAMPLERS),
        ("VideoLinearCFGGuidance", VideoLinearCFGGuidance, "VideoLinearCFGGuidance", VIDEO_MODEL),
        ("VideoTriangleCFGGuidance", VideoTriangleCFGGuidance, "VideoTriangleCFGGuidance", VIDEO_MODEL),
    ]
