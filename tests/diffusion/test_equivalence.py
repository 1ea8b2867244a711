"""Our graph's image equals diffusers' StableDiffusionPipeline for the same weights, prompt,
seed, sampler and steps."""

from __future__ import annotations

import pytest
import torch

from opencomfy.diffusion.detect import bundled_config
from opencomfy.nodes.diffusion_sampling import common_ksampler
from opencomfy.nodes.diffusion_conditioning import CLIPTextEncode
from opencomfy.nodes.diffusion_vae import VAEDecode

PROMPT, NEGATIVE = "a photo of a cat", "blurry"
WIDTH, HEIGHT, SEED, STEPS, CFG = 64, 64, 42, 8, 7.5


def _scheduler(kind: str):
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler

    config = {k: v for k, v in bundled_config("sd1_scheduler").items() if k != "_class_name"}
    if kind == "euler":
        return EulerDiscreteScheduler.from_config(config)
    if kind == "dpmpp_2m_karras":
        return DPMSolverMultistepScheduler.from_config(config, use_karras_sigmas=True,
                                                       algorithm_type="dpmsolver++", solver_order=2)
    # DDIM to sigma 0 at the end (ComfyUI's last step goes to 0, not to alphas_cumprod[0]).
    return DDIMScheduler.from_config(config, set_alpha_to_one=True, timestep_spacing="leading",
                                     clip_sample=False)


def _pipeline_image(models, scheduler, seed=SEED):
    from diffusers import StableDiffusionPipeline

    model, clip, vae = models
    pipe = StableDiffusionPipeline(vae=vae.autoencoder, text_encoder=clip.model, tokenizer=clip.tokenizer,
                                   unet=model.unet, scheduler=scheduler, safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    out = pipe(PROMPT, negative_prompt=NEGATIVE, height=HEIGHT, width=WIDTH, num_inference_steps=STEPS,
               guidance_scale=CFG, generator=torch.Generator().manual_seed(seed), output_type="pt")
    return out.images.permute(0, 2, 3, 1)


def _graph_image(models, sampler, scheduler, seed=SEED):
    model, clip, vae = models
    positive = CLIPTextEncode().encode(clip, PROMPT)[0]
    negative = CLIPTextEncode().encode(clip, NEGATIVE)[0]
    latent = {"samples": torch.zeros(1, 4, HEIGHT // 8, WIDTH // 8)}
    out = common_ksampler(model, seed, STEPS, CFG, sampler, scheduler, positive, negative, latent)
    return VAEDecode().decode(vae, out)[0]


# Tolerances: the model output's std is about 0.18. Euler and DPM++ 2M differ only by float
# rounding and by how a fractional timestep's sigma is interpolated (log vs linear) or rounded.
# ComfyUI scales the first noise of a ddim_uniform run by sigma rather than sqrt(1 + sigma^2)
# (its first sigma is below the largest), which diffusers does not: a slightly larger gap.
@pytest.mark.parametrize("sampler, scheduler, reference, tolerance", [
    ("euler", "normal", "euler", 3e-3),
    ("dpmpp_2m", "karras", "dpmpp_2m_karras", 3e-3),
    ("ddim", "ddim_uniform", "ddim", 1e-2),
])
def test_graph_matches_diffusers_pipeline(tiny_models, sampler, scheduler, reference, tolerance):
    ours = _graph_image(tiny_models, sampler, scheduler)
    theirs = _pipeline_image(tiny_models, _scheduler(reference))
    assert ours.shape == theirs.shape == (1, HEIGHT, WIDTH, 3)
    assert (ours - theirs).abs().max().item() < tolerance
    assert (ours - theirs).abs().mean().item() < tolerance / 5


def test_the_comparison_is_sensitive(tiny_models):
    """Another seed gives a clearly different image, so the tolerance above means something."""
    ours = _graph_image(tiny_models, "euler", "normal", seed=SEED + 1)
    theirs = _pipeline_image(tiny_models, _scheduler("euler"))
    assert (ours - theirs).abs().max().item() > 0.05


@pytest.mark.parametrize("sampler, variant, final", [("uni_pc", "bh1", "sigma_min"), ("uni_pc_bh2", "bh2", "zero")])
def test_unipc_matches_diffusers_on_the_same_sigmas(tiny_models, sampler, variant, final):
    """UniPC (order 3, lower order at the ends) against diffusers' UniPCMultistepScheduler, run
    on the scheduler's own Karras sigmas. (diffusers' bh1 gives NaN when ending at sigma 0, so
    that variant ends at the smallest sigma.)"""
    from diffusers import UniPCMultistepScheduler

    from opencomfy.diffusion.guiders import sample_custom
    from opencomfy.diffusion.sampler_objects import sampler_object
    from opencomfy.diffusion.sampling import prepare_noise

    model, clip, vae = tiny_models
    config = {k: v for k, v in bundled_config("sd1_scheduler").items() if k != "_class_name"}
    scheduler = UniPCMultistepScheduler.from_config(config, solver_order=3, solver_type=variant,
                                                    use_karras_sigmas=True, lower_order_final=True,
                                                    predict_x0=True, final_sigmas_type=final)
    theirs = _pipeline_image(tiny_models, scheduler)
    scheduler.set_timesteps(STEPS)
    sigmas = torch.as_tensor(scheduler.sigmas).float()
    latent = torch.zeros(1, 4, HEIGHT // 8, WIDTH // 8)
    positive = CLIPTextEncode().encode(clip, PROMPT)[0]
    negative = CLIPTextEncode().encode(clip, NEGATIVE)[0]
    out = sample_custom(model, prepare_noise(latent, SEED), CFG, sampler_object(sampler), sigmas, positive,
                        negative, latent)
    ours = VAEDecode().decode(vae, {"samples": out})[0]
    assert (ours - theirs).abs().max().item() < 3e-3
