"""ComfyUI's ``comfy.sample``: the seeded starting noise and the two sampling entry points that
custom sampler nodes call, :func:`sample` (KSampler's settings) and :func:`sample_custom`
(a SAMPLER and SIGMAS). Both run :meth:`opencomfy.diffusion.guiders.CFGGuider.sample`, so
``sample`` gives what the KSampler node gives for the same settings.

LATENT tensors are raw VAE latents in and out, as in ComfyUI.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np  # noqa: F401  (packs read `comfy.sample.np`)
import torch

from opencomfy.compat.comfy import samplers
from opencomfy.compat.comfy.sampler_helpers import prepare_mask

__all__ = ["prepare_noise", "fix_empty_latent_channels", "sample", "sample_custom", "prepare_mask",
           "prepare_sampling", "cleanup_additional_models"]

log = logging.getLogger(__name__)


def prepare_noise(latent_image: torch.Tensor, seed: int, noise_inds=None) -> torch.Tensor:
    """Standard normal noise shaped like ``latent_image`` from ``seed`` on the CPU; with
    ``noise_inds`` (a LATENT's ``batch_index``) each sample gets the noise of its index, so it
    does not depend on the batch it travels in. ComfyUI's exact draws."""
    from opencomfy.diffusion.noise import RandomNoise

    latent: dict[str, Any] = {"samples": latent_image}
    if noise_inds is not None:
        latent["batch_index"] = [int(i) for i in noise_inds]
    return RandomNoise(seed).generate_noise(latent)


def fix_empty_latent_channels(model, latent_image: torch.Tensor) -> torch.Tensor:
    """An all-zero latent made for another model family gets the model's channel count."""
    from opencomfy.diffusion.noise import fix_empty_latent_channels as fix

    return fix(model, latent_image)


def sample(model, noise, steps, cfg, sampler_name, scheduler, positive, negative, latent_image,
           denoise=1.0, disable_noise=False, start_step=None, last_step=None,
           force_full_denoise=False, noise_mask=None, sigmas=None, callback=None,
           disable_pbar=False, seed=None) -> torch.Tensor:
    """Sample ``latent_image`` + ``noise`` with a KSampler's settings; returns raw latents on
    the CPU. ``disable_noise`` is ComfyUI's unused flag: pass zero noise to add none."""
    sampler = samplers.KSampler(model, steps=steps, device=getattr(model, "load_device", None),
                                sampler=sampler_name, scheduler=scheduler, denoise=denoise,
                                model_options=model.model_options)
    samples = sampler.sample(noise, positive, negative, cfg=cfg, latent_image=latent_image,
                             start_step=start_step, last_step=last_step,
                             force_full_denoise=force_full_denoise, denoise_mask=noise_mask,
                             sigmas=sigmas, callback=callback, disable_pbar=disable_pbar, seed=seed)
    return samples.cpu()


def sample_custom(model, noise, cfg, sampler, sigmas, positive, negative, latent_image,
                  noise_mask=None, callback=None, disable_pbar=False, seed=None) -> torch.Tensor:
    """Sample with a SAMPLER over SIGMAS (what SamplerCustom does); returns raw latents."""
    samples = samplers.sample(model, noise, positive, negative, cfg, getattr(model, "load_device", None),
                              sampler, sigmas, model.model_options, latent_image=latent_image,
                              denoise_mask=noise_mask, callback=callback, disable_pbar=disable_pbar,
                              seed=seed)
    return samples.cpu()


def prepare_sampling(model, noise_shape, positive, negative, noise_mask):
    """ComfyUI's old five-value form: nothing to prepare any more, the values come back."""
    log.warning("comfy.sample.prepare_sampling is no longer needed and can be removed")
    return model, positive, negative, noise_mask, []


def cleanup_additional_models(models) -> None:
    """ComfyUI's old helper: each model's ``cleanup()``."""
    from opencomfy.compat.comfy.sampler_helpers import cleanup_additional_models as cleanup

    cleanup(models)
