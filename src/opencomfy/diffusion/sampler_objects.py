"""SAMPLER: a sampling algorithm with its options, as a value that travels between nodes.

:class:`KSAMPLER` wraps one sampler function. It does what ComfyUI's KSAMPLER does around the
function: scales the noise into the starting sample, keeps the unmasked part of an inpainting
latent on its own noising path, makes the per-step noise from the seed and turns the steps into
the guider's callbacks. Two kinds of function are accepted:

- ours (looked up by name in :mod:`opencomfy.diffusion.samplers`, so every sampler added there
  appears here): ``fn(denoise, x, sigmas, *, noise, callback, **options)``;
- a k-diffusion style function from a custom node: ``fn(model, x, sigmas, extra_args=None,
  callback=None, disable=None, **options)`` where ``model(x, sigma_tensor, **extra_args)``
  returns the denoised sample and ``callback`` receives ``{"i", "x", "denoised", "sigma",
  "sigma_hat"}``.
"""

from __future__ import annotations

import inspect
import math

import torch
import torch.nn.functional as F

from opencomfy.diffusion.samplers import DISCARD_PENULTIMATE_SIGMA, get_sampler

# Options a sampler function may lack: at these values they ask for nothing, so they are
# dropped instead of refused (ComfyUI's option nodes always send them).
_NEUTRAL_OPTIONS = {"noise_scaler": None, "pcoeff": 0.0, "icoeff": 1.0, "dcoeff": 0.0,
                    "simple_order_2": False}
_NEUTRAL_FOR = {"dpm_adaptive": {"eta": 0.0}, "seeds_2": {"solver_type": "phi_1"}}


class Sampler:
    """Base of SAMPLER values (ComfyUI's ``comfy.samplers.Sampler``)."""

    def sample(self, model_wrap, sigmas, extra_args, callback, noise, latent_image=None,
               denoise_mask=None, disable_pbar=False):
        raise NotImplementedError

    def max_denoise(self, model_wrap, sigmas) -> bool:
        """Whether sampling starts from pure noise (the first sigma is the model's largest)."""
        sigma_max = float(model_wrap.inner_model.schedule.sigma_max)
        first = float(sigmas[0])
        return math.isclose(sigma_max, first, rel_tol=1e-05) or first > sigma_max


def resize_mask(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A ``[B?, H, W]`` mask resized (bilinear) to ``like``'s latent size, channels and batch."""
    mask = mask.reshape(-1, 1, mask.shape[-2], mask.shape[-1]).float()
    mask = F.interpolate(mask, size=like.shape[-2:], mode="bilinear", align_corners=False)
    mask = mask.expand(-1, like.shape[1], -1, -1)
    reps = math.ceil(like.shape[0] / mask.shape[0])
    return mask.repeat(reps, 1, 1, 1)[:like.shape[0]]


class MaskedDenoiser:
    """Inpainting with a noise mask: outside the mask the sample is kept on the input's own
    noising path and the prediction is the input itself (ComfyUI's KSamplerX0Inpaint)."""

    def __init__(self, inner, mask, latent, noise, sigmas=None):
        self.inner, self.mask, self.latent, self.noise = inner, mask, latent, noise
        self.sigmas = sigmas

    @property
    def inner_model(self):
        return self.inner.inner_model

    def __call__(self, x, sigma):
        mask = self.mask
        mask_function = (getattr(self.inner, "model_options", None) or {}).get("denoise_mask_function")
        if mask_function is not None:
            # A MODEL patch (DifferentialDiffusion) reshapes the mask at every step.
            sigma_batch = torch.full((x.shape[0],), float(sigma), device=x.device)
            mask = mask_function(sigma_batch, mask, extra_options={"model": self.inner, "sigmas": self.sigmas})
        keep = 1 - mask
        x = x * mask + (self.latent + self.noise * sigma) * keep
        return self.inner(x, sigma) * mask + self.latent * keep

    @property
    def last_uncond(self):
        # ComfyUI hands the CFG++ samplers the unguided prediction before the mask blend.
        return self.inner.last_uncond


def _cfg_pp_samplers() -> set:
    from opencomfy.diffusion.samplers import CFG_PP_SAMPLERS

    return CFG_PP_SAMPLERS


class _WithOptions:
    """The guider called with extra model options (the CFG++ samplers need the negative
    evaluated even at cfg 1, where guidance would otherwise skip it)."""

    def __init__(self, inner, options: dict):
        self.inner, self.options = inner, options

    @property
    def inner_model(self):
        return self.inner.inner_model

    @property
    def model(self):
        return self.inner.inner_model

    @property
    def last_uncond(self):
        return self.inner.last_uncond

    @property
    def model_options(self):
        return {**self.inner.model_options, **self.options}

    def __call__(self, x, sigma):
        return self.inner(x, sigma, model_options=self.model_options)


def _scaled(noise, factor: float):
    if factor == 1.0:
        return noise
    return lambda sigma, sigma_next: noise(sigma, sigma_next) * factor


def _accepted(fn) -> tuple[set[str], bool]:
    """The keyword names ``fn`` takes, and whether it takes any (``**kwargs``)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return set(), True
    names = {p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
    return names, any(p.kind is p.VAR_KEYWORD for p in params)


class KSAMPLER(Sampler):
    """One sampler function with its options (``eta``, ``s_noise``, ``order``, ...)."""

    def __init__(self, sampler_function, extra_options: dict | None = None,
                 inpaint_options: dict | None = None, *, native: bool = False, name: str | None = None):
        self.sampler_function = sampler_function
        self.extra_options = dict(extra_options or {})
        self.inpaint_options = dict(inpaint_options or {})
        self.native = native
        self.name = name or getattr(sampler_function, "__name__", "sampler")
        if native:
            self._check_options()

    def _native_options(self) -> tuple[dict, float]:
        """(the options the function takes, the s_noise factor left to apply to its noise)."""
        names, any_kw = _accepted(self.sampler_function)
        neutral = {**_NEUTRAL_OPTIONS, **_NEUTRAL_FOR.get(self.name, {})}
        options, s_noise = {}, 1.0
        for key, value in self.extra_options.items():
            if any_kw or key in names:
                options[key] = value
            elif key == "s_noise":
                # Every sampler multiplies its fresh noise by s_noise: scaling the draws is the same.
                s_noise = float(value)
            elif key not in neutral or neutral[key] != value:
                raise ValueError(f"sampler {self.name!r} does not support the option {key}={value!r} yet")
        return options, s_noise

    def _check_options(self) -> None:
        self._native_options()

    @property
    def discard_penultimate_sigma(self) -> bool:
        return self.native and self.name in DISCARD_PENULTIMATE_SIGMA

    def _inpaint_noise(self, noise: torch.Tensor, seed: int | None) -> torch.Tensor:
        if not self.inpaint_options.get("random", False):
            return noise
        # A second seeded draw for the kept region (ComfyUI's ddim does this).
        generator = torch.manual_seed((41 if seed is None else int(seed)) + 1)
        return torch.randn(noise.shape, generator=generator, device="cpu").to(noise.device, noise.dtype)

    def sample(self, model_wrap, sigmas, extra_args, callback, noise, latent_image=None,
               denoise_mask=None, disable_pbar=False):
        """Run the function from ``noise`` over ``sigmas``; returns the final sample."""
        extra_args = dict(extra_args or {})
        seed = extra_args.get("seed")
        latent = torch.zeros_like(noise) if latent_image is None else latent_image
        denoise = model_wrap
        if self.native and self.name in _cfg_pp_samplers():
            denoise = _WithOptions(model_wrap, {"disable_cfg1_optimization": True})
        if denoise_mask is not None:
            denoise = MaskedDenoiser(denoise, denoise_mask, latent, self._inpaint_noise(noise, seed), sigmas)
        schedule = model_wrap.inner_model.schedule
        x = schedule.noise_scaling(float(sigmas[0]), noise, latent,
                                   max_denoise=self.max_denoise(model_wrap, sigmas))
        total = len(sigmas) - 1
        if self.native:
            return self._run_native(denoise, x, sigmas, seed, callback, total)
        return self._run_k_diffusion(denoise, x, sigmas, extra_args, callback, total, disable_pbar)

    def _run_native(self, denoise, x, sigmas, seed, callback, total):
        # The per-step noise ComfyUI gives this sampler (a Brownian tree for the SDE ones).
        from opencomfy.diffusion.sampling import noise_sampler_for

        options, s_noise = self._native_options()
        noise = _scaled(noise_sampler_for(self.name, x, sigmas, seed), s_noise)

        def step(i, x_i, x0):
            if callback is not None:
                callback(i, x0, x_i, total)

        return self.sampler_function(denoise, x, sigmas, noise=noise, callback=step, **options)

    def _run_k_diffusion(self, denoise, x, sigmas, extra_args, callback, total, disable_pbar):
        def model(x_in, sigma, **_kwargs):
            value = float(sigma.reshape(-1)[0]) if torch.is_tensor(sigma) else float(sigma)
            return denoise(x_in, value)

        model.inner_model = denoise.inner_model  # type: ignore[attr-defined]

        def step(info: dict):
            if callback is not None:
                callback(info["i"], info["denoised"], info["x"], total)

        return self.sampler_function(model, x, sigmas, extra_args=extra_args, callback=step,
                                     disable=disable_pbar, **self.extra_options)

    def __repr__(self) -> str:
        return f"<SAMPLER {self.name} {self.extra_options or ''}>".replace(" >", ">")


def ksampler(sampler_name: str, extra_options: dict | None = None,
             inpaint_options: dict | None = None) -> KSAMPLER:
    """One of our samplers by name, with options (ComfyUI's ``comfy.samplers.ksampler``)."""
    return KSAMPLER(get_sampler(sampler_name), extra_options, inpaint_options, native=True,
                    name=sampler_name)


def sampler_object(name: str) -> KSAMPLER:
    """The SAMPLER of a KSampler ``sampler_name`` (KSamplerSelect)."""
    if name == "ddim":
        # ComfyUI's ddim is Euler whose kept inpainting region gets its own noise draw.
        sampler = ksampler("euler", inpaint_options={"random": True})
        sampler.name = "ddim"
        return sampler
    return ksampler(name)
