"""k-diffusion-style entry points with ComfyUI's signatures, for custom node packs.

``sample_<name>(model, x, sigmas, extra_args=None, callback=None, disable=None, ...)`` where
``model(x, sigma_batch, **extra_args) -> x0`` is a denoiser in sigma space, as
``comfy.k_diffusion.sampling`` offers them (``dpm_fast`` / ``dpm_adaptive`` take
``sigma_min, sigma_max[, n]`` instead of the sigmas, as there). They run our samplers
(:mod:`samplers`); the noise defaults to what ComfyUI uses, seeded by ``extra_args["seed"]``.
The CFG++ samplers read the unguided prediction through a ``sampler_post_cfg_function``
added to ``extra_args["model_options"]``, as ComfyUI's guider calls it.

``callback`` receives ``{"x", "i", "sigma", "sigma_hat", "denoised"}`` after each step (``x``
is the sample after the step). ``disable`` (ComfyUI's progress bar switch) is accepted and
has no effect.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable

import torch

from opencomfy.diffusion.noise_samplers import BrownianTreeNoiseSampler, default_noise_sampler
from opencomfy.diffusion.samplers import CFG_PP_SAMPLERS, NOISE_SOURCE, SAMPLERS
from opencomfy.diffusion.samplers_base import ancestral_step, to_d

__all__ = ["BrownianTreeNoiseSampler", "default_noise_sampler", "to_d", "get_ancestral_step",
           "append_zero", "get_sigmas_karras", "get_sigmas_exponential", "get_sigmas_polyexponential",
           "get_sigmas_vp", "get_sigmas_laplace"]


def append_zero(x: torch.Tensor) -> torch.Tensor:
    return torch.cat([x, x.new_zeros([1])])


def get_sigmas_karras(n, sigma_min, sigma_max, rho=7.0, device="cpu"):
    """Karras et al. (2022): evenly spaced in sigma ** (1 / rho), then 0."""
    ramp = torch.linspace(0, 1, n, device=device)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return append_zero((hi + ramp * (lo - hi)) ** rho).to(device)


def get_sigmas_exponential(n, sigma_min, sigma_max, device="cpu"):
    """Evenly spaced in log sigma, then 0."""
    return append_zero(torch.linspace(math.log(sigma_max), math.log(sigma_min), n, device=device).exp())


def get_sigmas_polyexponential(n, sigma_min, sigma_max, rho=1.0, device="cpu"):
    """log sigma along a power ``rho`` of a ramp from 1 to 0, then 0."""
    ramp = torch.linspace(1, 0, n, device=device) ** rho
    return append_zero(torch.exp(ramp * (math.log(sigma_max) - math.log(sigma_min)) + math.log(sigma_min)))


def get_sigmas_vp(n, beta_d=19.9, beta_min=0.1, eps_s=1e-3, device="cpu"):
    """The continuous VP-SDE's sigmas at times from 1 to ``eps_s``, then 0."""
    t = torch.linspace(1, eps_s, n, device=device)
    return append_zero(torch.sqrt(torch.special.expm1(beta_d * t ** 2 / 2 + beta_min * t)))


def get_sigmas_laplace(n, sigma_min, sigma_max, mu=0.0, beta=0.5, device="cpu"):
    """Log sigma at the quantiles of a Laplace(mu, beta) distribution, clamped (no final 0)."""
    x = torch.linspace(0, 1, n, device=device)
    lam = mu - beta * torch.sign(0.5 - x) * torch.log(1 - 2 * torch.abs(0.5 - x) + 1e-5)
    return torch.clamp(torch.exp(lam), min=sigma_min, max=sigma_max)


def get_ancestral_step(sigma_from, sigma_to, eta=1.0):
    """(sigma_down, sigma_up) of an ancestral step."""
    down, up = ancestral_step(float(sigma_from), float(sigma_to), eta)
    return torch.as_tensor(down), torch.as_tensor(up)


class _KDenoiser:
    """``denoise(x, sigma_float)`` over a k-diffusion model, with the unguided prediction."""

    def __init__(self, model, x, extra_args: dict, *, capture_uncond: bool):
        self.model = model
        self.extra = dict(extra_args)
        self.s_in = x.new_ones([x.shape[0]])
        self._uncond = None
        if capture_uncond:
            options = dict(self.extra.get("model_options", {}))
            options["sampler_post_cfg_function"] = [*options.get("sampler_post_cfg_function", []), self._post_cfg]
            options["disable_cfg1_optimization"] = True
            self.extra["model_options"] = options

    def _post_cfg(self, args: dict):
        self._uncond = args["uncond_denoised"]
        return args["denoised"]

    def __call__(self, x, sigma: float):
        return self.model(x, self.s_in * sigma, **self.extra)

    @property
    def last_uncond(self):
        if self._uncond is None:
            raise RuntimeError("this CFG++ sampler needs the unguided prediction, but the model never "
                               "called model_options['sampler_post_cfg_function']")
        return self._uncond


# Options of ComfyUI's signatures that our samplers do not take, with the value at which they
# do nothing (any other value is refused rather than silently ignored).
_NO_OP_OPTIONS = {"s_churn": 0.0, "s_tmin": 0.0, "s_tmax": float("inf"), "s_noise": 1.0}


def _run(name: str, model, x, sigmas, extra_args, callback, noise_sampler, options: dict):
    fn = SAMPLERS[name]
    extra_args = {} if extra_args is None else extra_args
    accepted = inspect.signature(fn).parameters
    kwargs = {}
    for key, value in options.items():
        if key in accepted:
            kwargs[key] = value
        elif key not in _NO_OP_OPTIONS or value != _NO_OP_OPTIONS[key]:
            raise TypeError(f"sample_{name} does not support {key}={value!r}")
    if noise_sampler is None:
        source = NOISE_SOURCE.get(name)
        seed = extra_args.get("seed")
        if source in ("brownian", "brownian_device") and len(sigmas) > 1:
            noise_sampler = BrownianTreeNoiseSampler(x, sigmas[sigmas > 0].min(), sigmas.max(), seed=seed,
                                                     cpu=source == "brownian")
        else:
            noise_sampler = default_noise_sampler(x, seed=seed)
    denoise = _KDenoiser(model, x, extra_args, capture_uncond=name in CFG_PP_SAMPLERS)
    report: Callable[[int, torch.Tensor, torch.Tensor], None] | None = None
    if callback is not None:
        def report_step(i, xi, x0):
            callback({"x": xi, "i": i, "sigma": sigmas[min(i, len(sigmas) - 1)],
                      "sigma_hat": sigmas[min(i, len(sigmas) - 1)], "denoised": x0})
        report = report_step
    with torch.no_grad():
        return fn(denoise, x, sigmas, noise=noise_sampler, callback=report, **kwargs)


def _make(name: str):
    def sample(model, x, sigmas, extra_args=None, callback=None, disable=None, noise_sampler=None, **options):
        return _run(name, model, x, sigmas, extra_args, callback, noise_sampler, options)

    sample.__name__ = sample.__qualname__ = f"sample_{name}"
    sample.__doc__ = f"ComfyUI's ``sample_{name}`` over :func:`opencomfy.diffusion.samplers.SAMPLERS['{name}']`."
    return sample


def sample_dpm_fast(model, x, sigma_min, sigma_max, n, extra_args=None, callback=None, disable=None,
                    eta=0.0, s_noise=1.0, noise_sampler=None):
    """DPM-Solver-fast with ``n`` model evaluations from ``sigma_max`` down to ``sigma_min``."""
    if eta:
        raise TypeError("sample_dpm_fast supports eta=0 only")
    if float(sigma_min) <= 0 or float(sigma_max) <= 0:
        raise ValueError("sigma_min and sigma_max must not be 0")
    sigmas = torch.linspace(float(sigma_max), float(sigma_min), int(n) + 1)
    return _run("dpm_fast", model, x, sigmas, extra_args, callback, noise_sampler, {})


def sample_dpm_adaptive(model, x, sigma_min, sigma_max, extra_args=None, callback=None, disable=None,
                        order=3, rtol=0.05, atol=0.0078, h_init=0.05, pcoeff=0.0, icoeff=1.0, dcoeff=0.0,
                        accept_safety=0.81, eta=0.0, s_noise=1.0, noise_sampler=None, return_info=False):
    """Adaptive DPM-Solver-12/23 from ``sigma_max`` down to ``sigma_min``."""
    if eta or pcoeff or dcoeff or icoeff != 1.0 or return_info:
        raise TypeError("sample_dpm_adaptive supports eta=0, the integral controller and no info only")
    if float(sigma_min) <= 0 or float(sigma_max) <= 0:
        raise ValueError("sigma_min and sigma_max must not be 0")
    sigmas = torch.tensor([float(sigma_max), float(sigma_min)])
    options = {"order": order, "rtol": rtol, "atol": atol, "h_init": h_init, "accept_safety": accept_safety}
    return _run("dpm_adaptive", model, x, sigmas, extra_args, callback, noise_sampler, options)


# sample_euler, sample_dpmpp_2m_sde, ... for every k-diffusion name ComfyUI has.
for _name in SAMPLERS:
    if _name in ("ddim", "uni_pc", "uni_pc_bh2", "dpm_fast", "dpm_adaptive"):
        continue
    globals()[f"sample_{_name}"] = _make(_name)
    __all__.append(f"sample_{_name}")
__all__ += ["sample_dpm_fast", "sample_dpm_adaptive"]
