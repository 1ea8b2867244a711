"""Custom sampling: SamplerCustom(Advanced), the GUIDER nodes and the NOISE nodes.

SamplerCustomAdvanced runs ``guider.sample(noise, latent, sampler, sigmas)``: the same path
KSampler takes (:mod:`opencomfy.diffusion.guiders`), with each part chosen by its own node.
Both sampler nodes also return ``denoised_output``, the model's last prediction of the clean
latent.
"""

from __future__ import annotations

import torch

from opencomfy.diffusion import guiders
from opencomfy.diffusion.noise import EmptyNoise, RandomNoise as RandomNoiseValue, fix_empty_latent_channels
from opencomfy.diffusion.previews import prepare_callback
from opencomfy.nodes.v3_schema import V3SchemaNode

CUSTOM_SAMPLER = "comfy_extras.nodes_custom_sampler"
MAX_SEED = 0xffffffffffffffff
CFG = ("FLOAT", {"default": 8.0, "min": 0.0, "max": 100.0, "step": 0.1, "round": 0.01})
SEED = ("INT", {"default": 0, "min": 0, "max": MAX_SEED, "control_after_generate": True})


def _check_sigmas(sigmas) -> None:
    if not torch.is_tensor(sigmas) or sigmas.ndim != 1:
        raise ValueError("sigmas must be a SIGMAS value (a 1-D tensor of noise levels)")


def _run(model, guider, noise_source, sampler, sigmas, latent: dict) -> tuple[dict, dict]:
    """Sample ``latent`` and return (output, denoised_output) LATENTs."""
    _check_sigmas(sigmas)
    latent = latent.copy()
    latent_image = fix_empty_latent_channels(model, latent["samples"])
    latent["samples"] = latent_image
    x0_output: dict = {}
    callback = prepare_callback(model, sigmas.shape[-1] - 1, x0_output)
    samples = guider.sample(noise_source.generate_noise(latent), latent_image, sampler, sigmas,
                            denoise_mask=latent.get("noise_mask"), callback=callback,
                            seed=noise_source.seed)
    out = latent.copy()
    out["samples"] = samples
    denoised = out
    if "x0" in x0_output:
        denoised = latent.copy()
        denoised["samples"] = model.process_latent_out(x0_output["x0"].float().cpu())
    return out, denoised


class SamplerCustom:
    """CFG sampling with a chosen SAMPLER over chosen SIGMAS."""

    RETURN_TYPES = ("LATENT", "LATENT")
    RETURN_NAMES = ("output", "denoised_output")
    FUNCTION = "sample"
    CATEGORY = "sampling/custom_sampling"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MODEL",), "add_noise": ("BOOLEAN", {"default": True}), "noise_seed": SEED,
            "cfg": CFG, "positive": ("CONDITIONING",), "negative": ("CONDITIONING",),
            "sampler": ("SAMPLER",), "sigmas": ("SIGMAS",), "latent_image": ("LATENT",),
        }}

    def sample(self, model, add_noise, noise_seed, cfg, positive, negative, sampler, sigmas, latent_image):
        guider = guiders.CFGGuider(model)
        guider.set_conds(positive, negative)
        guider.set_cfg(cfg)
        noise = RandomNoiseValue(noise_seed) if add_noise else EmptyNoise()
        if not add_noise:
            # The per-step noise of stochastic samplers still follows the seed.
            noise.seed = noise_seed
        return _run(model, guider, noise, sampler, sigmas, latent_image)


class SamplerCustomAdvanced:
    """Sampling from separately chosen NOISE, GUIDER, SAMPLER and SIGMAS."""

    RETURN_TYPES = ("LATENT", "LATENT")
    RETURN_NAMES = ("output", "denoised_output")
    FUNCTION = "sample"
    CATEGORY = "sampling/custom_sampling"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"noise": ("NOISE",), "guider": ("GUIDER",), "sampler": ("SAMPLER",),
                             "sigmas": ("SIGMAS",), "latent_image": ("LATENT",)}}

    def sample(self, noise, guider, sampler, sigmas, latent_image):
        for value, what, needs in ((noise, "noise", "generate_noise"), (guider, "guider", "sample"),
                                   (sampler, "sampler", "sample")):
            if not hasattr(value, needs):
                raise ValueError(f"the {what} input is not a {what.upper()} value")
        return _run(guider.model_patcher, guider, noise, sampler, sigmas, latent_image)


# -- guiders -----------------------------------------------------------------------------------

class _Guider:
    RETURN_TYPES = ("GUIDER",)
    FUNCTION = "get_guider"
    CATEGORY = "sampling/custom_sampling/guiders"


class CFGGuider(_Guider):
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",), "positive": ("CONDITIONING",),
                             "negative": ("CONDITIONING",), "cfg": CFG}}

    def get_guider(self, model, positive, negative, cfg):
        guider = guiders.CFGGuider(model)
        guider.set_conds(positive, negative)
        guider.set_cfg(cfg)
        return (guider,)


class BasicGuider(_Guider):
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",), "conditioning": ("CONDITIONING",)}}

    def get_guider(self, model, conditioning):
        guider = guiders.BasicGuider(model)
        guider.set_conds(conditioning)
        return (guider,)


class DualCFGGuider(_Guider):
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MODEL",), "cond1": ("CONDITIONING",), "cond2": ("CONDITIONING",),
            "negative": ("CONDITIONING",), "cfg_conds": CFG, "cfg_cond2_negative": CFG,
            "style": (["regular", "nested"],),
        }}

    def get_guider(self, model, cond1, cond2, negative, cfg_conds, cfg_cond2_negative, style="regular"):
        guider = guiders.DualCFGGuider(model)
        guider.set_conds(cond1, cond2, negative)
        guider.set_cfg(cfg_conds, cfg_cond2_negative, nested=style == "nested")
        return (guider,)


class PerpNegGuider(V3SchemaNode):
    """CFG that pushes away only from the part of the negative prompt unrelated to the positive."""

    NODE_ID = "PerpNegGuider"
    CATEGORY = "_for_testing"
    RELATIVE_PYTHON_MODULE = "comfy_extras.nodes_perpneg"
    RETURN_TYPES = ("GUIDER",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MODEL", {}), "positive": ("CONDITIONING", {}), "negative": ("CONDITIONING", {}),
            "empty_conditioning": ("CONDITIONING", {}), "cfg": CFG,
            "neg_scale": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 100.0, "step": 0.01}),
        }}

    @classmethod
    def GET_NODE_INFO_V1(cls):
        return {**super().GET_NODE_INFO_V1(), "experimental": True}

    def execute(self, model, positive, negative, empty_conditioning, cfg, neg_scale):
        guider = guiders.PerpNegGuider(model)
        guider.set_conds(positive, negative, empty_conditioning)
        guider.set_cfg(cfg, neg_scale)
        return (guider,)


# -- noise -------------------------------------------------------------------------------------

class RandomNoise:
    RETURN_TYPES = ("NOISE",)
    FUNCTION = "get_noise"
    CATEGORY = "sampling/custom_sampling/noise"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"noise_seed": SEED}}

    def get_noise(self, noise_seed):
        return (RandomNoiseValue(noise_seed),)


class DisableNoise:
    RETURN_TYPES = ("NOISE",)
    FUNCTION = "get_noise"
    CATEGORY = "sampling/custom_sampling/noise"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}}

    def get_noise(self):
        return (EmptyNoise(),)


class AddNoise:
    """Noise a latent to the level of the given sigmas (their span) without sampling."""

    RETURN_TYPES = ("LATENT",)
    FUNCTION = "add_noise"
    CATEGORY = "_for_testing/custom_sampling/noise"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",), "noise": ("NOISE",), "sigmas": ("SIGMAS",),
                             "latent_image": ("LATENT",)}}

    def add_noise(self, model, noise, sigmas, latent_image):
        _check_sigmas(sigmas)
        if len(sigmas) == 0:
            return (latent_image,)
        samples = latent_image["samples"].float()
        drawn = noise.generate_noise(latent_image).float()
        scale = float((sigmas[0] - sigmas[-1]).abs()) if len(sigmas) > 1 else float(sigmas[0])
        # An all-zero latent (EmptyLatentImage) is left unscaled, as in ComfyUI.
        if torch.count_nonzero(samples) > 0:
            samples = model.process_latent_in(samples)
        noisy = model.schedule.noise_scaling(scale, drawn, samples, max_denoise=False)
        out = latent_image.copy()
        out["samples"] = torch.nan_to_num(model.process_latent_out(noisy), nan=0.0, posinf=0.0, neginf=0.0)
        return (out,)


_V1 = [SamplerCustom, SamplerCustomAdvanced, CFGGuider, BasicGuider, DualCFGGuider, RandomNoise,
       DisableNoise, AddNoise]

NODES = [
    *[(cls.__name__, cls, cls.__name__, CUSTOM_SAMPLER) for cls in _V1],
    (PerpNegGuider.NODE_ID, PerpNegGuider, PerpNegGuider.DISPLAY_NAME, PerpNegGuider.RELATIVE_PYTHON_MODULE),
]
