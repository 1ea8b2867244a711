"""KSampler's inputs, as ComfyUI makes them: the initial noise, the sigmas, the noise source of
each sampler and the extra input of inpainting UNets.

The sampling itself has one path, :meth:`opencomfy.diffusion.guiders.CFGGuider.sample`, which
KSampler (:func:`opencomfy.nodes.diffusion_sampling.common_ksampler`) and the custom sampling
nodes share. The initial noise comes from ``torch.manual_seed(seed)`` on the CPU for the whole
batch shape (or per ``batch_index``, so a sample's noise does not depend on the batch it is in).
The noise the stochastic samplers add on the way comes from :mod:`noise_samplers`, seeded from
the same seed as ComfyUI seeds it (a Brownian tree for the SDE samplers).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from opencomfy.diffusion.noise_samplers import BrownianTreeNoiseSampler, default_noise_sampler
from opencomfy.diffusion.samplers import DISCARD_PENULTIMATE_SIGMA, NOISE_SOURCE
from opencomfy.diffusion.schedulers import calculate_sigmas


def prepare_noise(latent: torch.Tensor, seed: int, batch_index: list[int] | None = None) -> torch.Tensor:
    """Standard normal noise of the latent's shape from ``seed``, on the CPU."""
    generator = torch.manual_seed(seed)
    if batch_index is None:
        return torch.randn(latent.size(), dtype=torch.float32, generator=generator, device="cpu")
    wanted = sorted(set(batch_index))
    drawn = {}
    for i in range(wanted[-1] + 1):
        n = torch.randn([1, *latent.shape[1:]], dtype=torch.float32, generator=generator, device="cpu")
        if i in wanted:
            drawn[i] = n
    return torch.cat([drawn[i] for i in batch_index])


def sigmas_for(model, scheduler: str, sampler_name: str, steps: int, denoise: float = 1.0) -> torch.Tensor:
    """ComfyUI's KSampler sigmas for ``steps`` steps at ``denoise`` (empty when denoise <= 0)."""
    discard = sampler_name in DISCARD_PENULTIMATE_SIGMA

    def full(n):
        if discard:
            s = calculate_sigmas(model.schedule, scheduler, n + 1)
            return torch.cat([s[:-2], s[-1:]])
        return calculate_sigmas(model.schedule, scheduler, n)

    if denoise is None or denoise > 0.9999:
        return full(steps)
    if denoise <= 0.0:
        return torch.zeros(0)
    return full(int(steps / denoise))[-(steps + 1):]


def inpaint_concat(model, options: dict, latent_image: torch.Tensor, noise_mask) -> torch.Tensor:
    """The extra input of an inpainting UNet: the mask (1 = repaint) and the scaled latent of the
    masked image, from InpaintModelConditioning's options or else from the latent itself."""
    masked = options.get("concat_latent_image")
    masked = latent_image if masked is None else masked
    mask = options.get("concat_mask")
    mask = noise_mask if mask is None else mask
    if mask is None:
        mask = torch.ones(latent_image.shape[0], 1, *latent_image.shape[-2:])
    mask = mask.reshape(-1, 1, mask.shape[-2], mask.shape[-1]).float()
    mask = F.interpolate(mask, size=latent_image.shape[-2:], mode="bilinear", align_corners=False)
    masked = model.process_latent_in(masked.float())
    if masked.shape[0] != mask.shape[0]:
        n = max(masked.shape[0], mask.shape[0])
        masked = masked.repeat(math.ceil(n / masked.shape[0]), 1, 1, 1)[:n]
        mask = mask.repeat(math.ceil(n / mask.shape[0]), 1, 1, 1)[:n]
    return torch.cat([mask.round(), masked], dim=1)


def noise_sampler_for(sampler_name: str, x: torch.Tensor, sigmas: torch.Tensor, seed: int | None):
    """The noise source ComfyUI gives ``sampler_name`` for a sample ``x`` and these sigmas."""
    source = NOISE_SOURCE.get(sampler_name, "default")
    if source in ("brownian", "brownian_device") and len(sigmas) > 1:
        positive = sigmas[sigmas > 0]
        return BrownianTreeNoiseSampler(x, positive.min(), sigmas.max(), seed=seed,
                                        cpu=source == "brownian")
    return default_noise_sampler(x, seed=seed)
