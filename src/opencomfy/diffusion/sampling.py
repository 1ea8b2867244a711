"""KSampler: noise, sigmas, guidance, inpainting masks, progress and previews, as ComfyUI.

LATENT ``samples`` are raw VAE latents; the model's scale factor is applied around sampling.
The initial noise comes from ``torch.manual_seed(seed)`` on the CPU for the whole batch shape
(or per ``batch_index``, so a sample's noise does not depend on the batch it is in). The noise
the stochastic samplers add on the way comes from :mod:`noise_samplers`, seeded from the same
seed as ComfyUI seeds it (a Brownian tree for the SDE samplers).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from opencomfy.diffusion import conditioning as conds
from opencomfy.diffusion.memory import models_in_use
from opencomfy.diffusion.noise_samplers import BrownianTreeNoiseSampler, default_noise_sampler
from opencomfy.diffusion.samplers import CFG_PP_SAMPLERS, DISCARD_PENULTIMATE_SIGMA, NOISE_SOURCE, get_sampler
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


def _resize_mask(mask: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
    mask = mask.reshape(-1, 1, mask.shape[-2], mask.shape[-1]).float()
    mask = F.interpolate(mask, size=latent.shape[-2:], mode="bilinear", align_corners=False)
    mask = mask.expand(-1, latent.shape[1], -1, -1)
    reps = math.ceil(latent.shape[0] / mask.shape[0])
    return mask.repeat(reps, 1, 1, 1)[:latent.shape[0]]


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


class _Masked:
    """Inpainting with a noise mask: outside the mask, the sample is kept on the input's own
    noising path and the prediction is the input itself."""

    def __init__(self, inner, mask, latent, noise):
        self.inner, self.mask, self.latent, self.noise = inner, mask, latent, noise

    def __call__(self, x, sigma):
        x = x * self.mask + (self.latent + self.noise * sigma) * (1 - self.mask)
        return self.inner(x, sigma) * self.mask + self.latent * (1 - self.mask)

    @property
    def last_uncond(self):
        # ComfyUI hands CFG++ samplers the model's unguided output before the mask blend.
        return self.inner.last_uncond


class _AlwaysUnguided(conds.Guided):
    """Guidance that evaluates the negative even at cfg 1, for the CFG++ samplers (which step
    along it: at cfg 1 ComfyUI turns its skip-the-negative shortcut off for them)."""

    def __call__(self, x, sigma):
        cond, uncond = conds.predict(self.model, x, sigma, [self.positive, self.negative], self.plans)
        self.last_uncond = uncond
        return uncond + (cond - uncond) * self.cfg


def noise_sampler_for(sampler_name: str, x: torch.Tensor, sigmas: torch.Tensor, seed: int | None):
    """The noise source ComfyUI gives ``sampler_name`` for a sample ``x`` and these sigmas."""
    source = NOISE_SOURCE.get(sampler_name, "default")
    if source in ("brownian", "brownian_device") and len(sigmas) > 1:
        positive = sigmas[sigmas > 0]
        return BrownianTreeNoiseSampler(x, positive.min(), sigmas.max(), seed=seed,
                                        cpu=source == "brownian")
    return default_noise_sampler(x, seed=seed)


class _Progress:
    """Step progress, interrupts and latent previews for the running node."""

    def __init__(self, model, total: int):
        from opencomfy.engine.progress import current_context

        self.total = total
        self.model = model
        ctx = current_context()
        extra = ctx.extra_data if ctx is not None else {}
        method = extra.get("preview_method") if isinstance(extra, dict) else None
        if method in (None, "default"):
            try:
                from opencomfy.compat.comfy.cli_args import args
                method = getattr(args.preview_method, "value", args.preview_method)
            except ImportError:  # pragma: no cover
                method = "none"
        self.previews = ctx is not None and method not in ("none", None)

    def preview(self, x0: torch.Tensor):
        from PIL import Image

        factors = torch.tensor(self.model.latent_rgb, dtype=torch.float32)
        rgb = x0[0].float().cpu().permute(1, 2, 0) @ factors
        pixels = ((rgb + 1.0) / 2.0).clamp(0, 1).mul(255).round().to(torch.uint8).numpy()
        return ("JPEG", Image.fromarray(pixels), 512)

    def __call__(self, i: int, x: torch.Tensor, x0: torch.Tensor) -> None:
        from opencomfy.engine.progress import report_progress

        report_progress(i + 1, self.total, preview=self.preview(x0) if self.previews else None)


def sample(model, *, noise: torch.Tensor, positive, negative, cfg: float, sampler_name: str,
           sigmas: torch.Tensor, latent_image: torch.Tensor, noise_mask: torch.Tensor | None = None,
           seed: int = 0) -> torch.Tensor:
    """Run a sampler over ``sigmas``; ``latent_image`` raw, result raw (unscaled) latents."""
    if len(sigmas) <= 1:
        return latent_image
    in_channels = int(model.unet.config.in_channels)
    if in_channels != model.latent_channels and not model.is_inpaint:
        raise ValueError(f"models whose UNet takes {in_channels} input channels (such as "
                         "instruct-pix2pix) are not supported yet")
    sampler = get_sampler(sampler_name)
    schedule = model.schedule
    height, width = latent_image.shape[-2:]
    needs_pooled = model.needs_pooled
    positive = conds.resolve(positive, schedule=schedule, height=height, width=width, needs_pooled=needs_pooled)
    negative = conds.resolve(negative, schedule=schedule, height=height, width=width, needs_pooled=needs_pooled)
    progress = _Progress(model, len(sigmas) - 1)
    if model.is_inpaint:
        for c in positive + negative:
            c.concat = inpaint_concat(model, c.options, latent_image, noise_mask)
    controlnets = {id(a.control): a.control for c in positive + negative for a in c.controls}
    with models_in_use(model, *controlnets.values()) as device:
        latent = model.process_latent_in(latent_image).to(device)
        noise = noise.to(device)
        sigmas = sigmas.float()
        sigma_max = schedule.sigma_max
        max_denoise = math.isclose(sigma_max, float(sigmas[0]), rel_tol=1e-5) or float(sigmas[0]) > sigma_max
        x = schedule.noise_scaling(float(sigmas[0]), noise, latent, max_denoise=max_denoise)
        if sampler_name in CFG_PP_SAMPLERS:
            denoise = _AlwaysUnguided(model, positive, negative, cfg)
        else:
            denoise = conds.guided(model, positive, negative, cfg)
        if noise_mask is not None:
            kept_noise = noise
            if sampler_name == "ddim":
                # ComfyUI's ddim re-noises the kept region with its own draw (seed + 1).
                generator = torch.manual_seed(seed + 1)
                kept_noise = torch.randn(noise.shape, generator=generator, device="cpu").to(device)
            denoise = _Masked(denoise, _resize_mask(noise_mask, latent).to(device), latent, kept_noise)

        fresh_noise = noise_sampler_for(sampler_name, x, sigmas, seed)
        x = sampler(denoise, x, sigmas, noise=fresh_noise, callback=progress)
        out = model.process_latent_out(x.float())
    return out.cpu()


def common_ksampler(model, seed: int, steps: int, cfg: float, sampler_name: str, scheduler: str,
                    positive, negative, latent: dict, *, denoise: float = 1.0,
                    disable_noise: bool = False, start_step: int | None = None,
                    last_step: int | None = None, force_full_denoise: bool = False) -> dict:
    """ComfyUI's ``common_ksampler``: returns a copy of ``latent`` with new ``samples``."""
    latent_image = latent["samples"].float()
    if latent_image.shape[1] != model.latent_channels and latent_image.abs().sum() == 0:
        latent_image = torch.zeros(latent_image.shape[0], model.latent_channels, *latent_image.shape[2:])
    if disable_noise:
        noise = torch.zeros(latent_image.size(), dtype=torch.float32)
    else:
        noise = prepare_noise(latent_image, seed, latent.get("batch_index"))
    sigmas = sigmas_for(model, scheduler, sampler_name, steps, denoise)
    if last_step is not None and last_step < len(sigmas) - 1:
        sigmas = sigmas[:last_step + 1].clone()
        if force_full_denoise:
            sigmas[-1] = 0
    if start_step is not None:
        if start_step < len(sigmas) - 1:
            sigmas = sigmas[start_step:]
        else:
            out = latent.copy()
            out["samples"] = latent_image
            return out
    samples = sample(model, noise=noise, positive=positive, negative=negative, cfg=cfg,
                     sampler_name=sampler_name, sigmas=sigmas, latent_image=latent_image,
                     noise_mask=latent.get("noise_mask"), seed=seed)
    out = latent.copy()
    out["samples"] = samples
    return out
