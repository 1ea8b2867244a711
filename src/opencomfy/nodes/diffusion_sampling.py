"""KSampler and KSamplerAdvanced (ComfyUI's ``nodes.py``).

Both go through :func:`common_ksampler`, which builds the same values the custom sampling nodes
make (RandomNoise, a CFGGuider, the named SAMPLER and the scheduler's SIGMAS) and runs
``CFGGuider.sample``: the one sampling path of :mod:`opencomfy.diffusion.guiders`.
"""

from __future__ import annotations

from opencomfy.compat.comfy.samplers import SAMPLER_NAMES, SCHEDULER_NAMES

MAX_SEED = 0xffffffffffffffff


def common_ksampler(model, seed: int, steps: int, cfg: float, sampler_name: str, scheduler: str,
                    positive, negative, latent: dict, *, denoise: float = 1.0,
                    disable_noise: bool = False, start_step: int | None = None,
                    last_step: int | None = None, force_full_denoise: bool = False) -> dict:
    """ComfyUI's ``common_ksampler``: a copy of ``latent`` with new ``samples``."""
    from opencomfy.diffusion.guiders import sample_custom
    from opencomfy.diffusion.noise import EmptyNoise, RandomNoise, fix_empty_latent_channels
    from opencomfy.diffusion.previews import prepare_callback
    from opencomfy.diffusion.sampler_objects import sampler_object
    from opencomfy.diffusion.sigmas import ksampler_sigmas

    latent_image = fix_empty_latent_channels(model, latent["samples"])
    out = latent.copy()
    out["samples"] = latent_image
    source = EmptyNoise() if disable_noise else RandomNoise(seed)
    noise = source.generate_noise(out)
    sampler = sampler_object(sampler_name)
    sigmas = ksampler_sigmas(model, scheduler, sampler_name, steps, denoise, start_step=start_step,
                             last_step=last_step, force_full_denoise=force_full_denoise)
    if sigmas is None:      # the start step lies past the last one: nothing to do
        return out
    out["samples"] = sample_custom(model, noise, cfg, sampler, sigmas, positive, negative, latent_image,
                                   noise_mask=latent.get("noise_mask"),
                                   callback=prepare_callback(model, steps), seed=seed)
    return out


class KSampler:
    """Denoise a latent with a model, positive and negative conditioning."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MODEL", {"tooltip": "Diffusion model that predicts the noise."}),
            "seed": ("INT", {"default": 0, "min": 0, "max": MAX_SEED, "control_after_generate": True,
                             "tooltip": "Seed of the starting noise; the same seed repeats a result."}),
            "steps": ("INT", {"default": 20, "min": 1, "max": 10000,
                              "tooltip": "How many sampling steps; more is slower."}),
            "cfg": ("FLOAT", {"default": 8.0, "min": 0.0, "max": 100.0, "step": 0.1, "round": 0.01,
                              "tooltip": "Classifier-free guidance: how hard each step is pushed "
                                         "from the negative towards the positive prompt. 1 turns it "
                                         "off; very high values oversaturate and distort."}),
            "sampler_name": (SAMPLER_NAMES, {"tooltip": "Solver that takes the steps; each trades "
                                                        "speed, detail and look differently."}),
            "scheduler": (SCHEDULER_NAMES, {"tooltip": "How the noise level falls from step to "
                                                       "step."}),
            "positive": ("CONDITIONING", {"tooltip": "Prompt conditioning to steer towards."}),
            "negative": ("CONDITIONING", {"tooltip": "Prompt conditioning to steer away from."}),
            "latent_image": ("LATENT", {"tooltip": "Starting latent: empty for text-to-image, encoded for image-to-image."}),
            "denoise": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01,
                                  "tooltip": "Share of the schedule to run: 1 starts from pure "
                                             "noise, lower values keep more of the input latent."}),
        }}

    RETURN_TYPES = ("LATENT",)
    OUTPUT_TOOLTIPS = ("The sampled latent; decode it with a VAE.",)
    FUNCTION = "sample"
    CATEGORY = "sampling"
    DESCRIPTION = ("Runs the sampler: starting from noise added to the latent, the model removes it step "
                   "by step, guided by the positive and negative prompts.")

    def sample(self, model, seed, steps, cfg, sampler_name, scheduler, positive, negative,
               latent_image, denoise=1.0):
        return (common_ksampler(model, seed, steps, cfg, sampler_name, scheduler, positive, negative,
                                latent_image, denoise=denoise),)


class KSamplerAdvanced:
    """KSampler with control over the step range, added noise and leftover noise."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MODEL",),
            "add_noise": (["enable", "disable"],),
            "noise_seed": ("INT", {"default": 0, "min": 0, "max": MAX_SEED, "control_after_generate": True}),
            "steps": ("INT", {"default": 20, "min": 1, "max": 10000}),
            "cfg": ("FLOAT", {"default": 8.0, "min": 0.0, "max": 100.0, "step": 0.1, "round": 0.01}),
            "sampler_name": (SAMPLER_NAMES,),
            "scheduler": (SCHEDULER_NAMES,),
            "positive": ("CONDITIONING",),
            "negative": ("CONDITIONING",),
            "latent_image": ("LATENT",),
            "start_at_step": ("INT", {"default": 0, "min": 0, "max": 10000}),
            "end_at_step": ("INT", {"default": 10000, "min": 0, "max": 10000}),
            "return_with_leftover_noise": (["disable", "enable"],),
        }}

    RETURN_TYPES = ("LATENT",)
    FUNCTION = "sample"
    CATEGORY = "sampling"

    def sample(self, model, add_noise, noise_seed, steps, cfg, sampler_name, scheduler, positive,
               negative, latent_image, start_at_step, end_at_step, return_with_leftover_noise,
               denoise=1.0):
        return (common_ksampler(model, noise_seed, steps, cfg, sampler_name, scheduler, positive,
                                negative, latent_image, denoise=denoise,
                                disable_noise=add_noise == "disable", start_step=start_at_step,
                                last_step=end_at_step,
                                force_full_denoise=return_with_leftover_noise != "enable"),)


NODES = [
    ("KSampler", KSampler, "KSampler", "nodes"),
    ("KSamplerAdvanced", KSamplerAdvanced, "KSampler (Advanced)", "nodes"),
]
