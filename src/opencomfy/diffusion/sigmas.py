"""SIGMAS: the 1-D float tensor of noise levels a sampler walks, and the ways to make and cut one.

A SIGMAS value is a plain ``torch.Tensor`` of shape ``[n]`` (largest first, usually ending in
0), so custom nodes can make and read it as in ComfyUI. Here live the parametric schedules of
the custom-sampling nodes (Karras, exponential, polyexponential, Laplace, VP), the ones that
need a model's training schedule (the KSampler schedulers with denoise, SD-Turbo), the
published tables (Align Your Steps, GITS, Optimal Steps) and the edits (split, flip, extend).
"""

from __future__ import annotations

import math
import re

import numpy as np
import torch

from opencomfy.diffusion.schedulers import calculate_sigmas


def _append_zero(sigmas: torch.Tensor) -> torch.Tensor:
    return torch.cat([sigmas, sigmas.new_zeros(1)])


def empty() -> torch.Tensor:
    """No steps at all (denoise 0): samplers then return the latent untouched."""
    return torch.zeros(0, dtype=torch.float32)


# -- schedules over a model's training noise levels ------------------------------------------

def scheduler_sigmas(schedule, scheduler: str, steps: int, denoise: float = 1.0) -> torch.Tensor:
    """BasicScheduler: the last ``steps`` steps of a ``steps / denoise``-step schedule."""
    total = steps
    if denoise < 1.0:
        if denoise <= 0.0:
            return empty()
        total = int(steps / denoise)
    return calculate_sigmas(schedule, scheduler, total).cpu()[-(steps + 1):]


def ksampler_sigmas(model, scheduler: str, sampler_name: str, steps: int, denoise: float = 1.0, *,
                    start_step: int | None = None, last_step: int | None = None,
                    force_full_denoise: bool = False) -> torch.Tensor | None:
    """KSampler(Advanced)'s sigmas: the scheduler's (the midpoint samplers drop their
    second-to-last sigma), cut to [start_step, last_step]. ``force_full_denoise`` makes a cut
    end at 0; None means the start lies past the end, so there is nothing to sample."""
    from opencomfy.diffusion.sampling import sigmas_for

    out = sigmas_for(model, scheduler, sampler_name, steps, denoise)
    if last_step is not None and last_step < len(out) - 1:
        out = out[:last_step + 1].clone()
        if force_full_denoise:
            out[-1] = 0
    if start_step is not None:
        if start_step >= len(out) - 1:
            return None
        out = out[start_step:]
    return out


def sd_turbo(schedule, steps: int, denoise: float = 1.0) -> torch.Tensor:
    """SD-Turbo's few-step schedule: every 100th training timestep from 999 down, entered at
    ``denoise``, then 0."""
    start = 10 - int(10 * denoise)
    timesteps = torch.flip(torch.arange(1, 11) * 100 - 1, (0,))[start:start + steps]
    return _append_zero(schedule.sigma(timesteps.float()).float())


def beta_schedule(schedule, steps: int, alpha: float, beta: float) -> torch.Tensor:
    """Training timesteps at the quantiles of a Beta(alpha, beta) distribution."""
    from opencomfy.diffusion.schedulers import beta as beta_quantiles

    if alpha <= 0 or beta <= 0:
        raise ValueError("the beta schedule needs alpha and beta above 0")
    return beta_quantiles(schedule, steps, alpha=alpha, beta_=beta).float()


# -- parametric schedules (k-diffusion's) -----------------------------------------------------

def karras(steps: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> torch.Tensor:
    """Karras et al. (2022): evenly spaced in ``sigma ** (1 / rho)``."""
    ramp = torch.linspace(0, 1, steps)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return _append_zero((hi + ramp * (lo - hi)) ** rho)


def exponential(steps: int, sigma_min: float, sigma_max: float) -> torch.Tensor:
    """Evenly spaced in ``log sigma``."""
    return _append_zero(torch.linspace(math.log(sigma_max), math.log(sigma_min), steps).exp())


def polyexponential(steps: int, sigma_min: float, sigma_max: float, rho: float = 1.0) -> torch.Tensor:
    """Log sigma along a ``ramp ** rho`` curve (rho 1 is :func:`exponential`)."""
    ramp = torch.linspace(1, 0, steps) ** rho
    log_min = math.log(sigma_min)
    return _append_zero(torch.exp(ramp * (math.log(sigma_max) - log_min) + log_min))


def laplace(steps: int, sigma_min: float, sigma_max: float, mu: float = 0.0,
            beta: float = 0.5) -> torch.Tensor:
    """Tiankai et al. (2024): log sigma at the quantiles of a Laplace(mu, beta) distribution,
    clamped to [sigma_min, sigma_max]. Like ComfyUI, no final 0 is appended."""
    x = torch.linspace(0, 1, steps)
    centred = 0.5 - x
    # 1e-5 keeps the logarithm finite at both ends of the ramp.
    log_sigma = mu - beta * torch.sign(centred) * torch.log(1 - 2 * centred.abs() + 1e-5)
    return log_sigma.exp().clamp(min=sigma_min, max=sigma_max)


def vp(steps: int, beta_d: float = 19.9, beta_min: float = 0.1, eps_s: float = 1e-3) -> torch.Tensor:
    """The continuous variance-preserving SDE's sigmas (Song et al. 2021) at evenly spaced t."""
    t = torch.linspace(1, eps_s, steps)
    return _append_zero(torch.sqrt(torch.special.expm1(beta_d * t ** 2 / 2 + beta_min * t)))


# -- published tables ----------------------------------------------------------------------

def loglinear_interp(levels, count: int) -> np.ndarray:
    """``count`` decreasing values that follow ``levels`` piecewise linearly in log space."""
    levels = np.asarray(levels, dtype=np.float64)
    xs = np.linspace(0, 1, len(levels))
    ys = np.log(levels[::-1])
    out = np.exp(np.interp(np.linspace(0, 1, count), xs, ys))
    return out[::-1].copy()


def from_table(levels, steps: int, denoise: float) -> torch.Tensor:
    """A tabulated schedule stretched to ``steps`` (log-linear), cut to the last
    ``round(steps * denoise)`` steps and ended at 0: how the AYS, GITS and Optimal Steps
    nodes use their tables."""
    total = steps
    if denoise < 1.0:
        if denoise <= 0.0:
            return empty()
        total = round(steps * denoise)
    values = np.asarray(levels, dtype=np.float64)
    if len(values) != steps + 1:
        values = loglinear_interp(values, steps + 1)
    values = values[-(total + 1):].copy()
    values[-1] = 0.0
    return torch.tensor(values, dtype=torch.float32)


# -- edits -------------------------------------------------------------------------------------

def split_at_step(sigmas: torch.Tensor, step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(the first ``step`` steps, the rest); both keep the sigma at ``step``."""
    return sigmas[:step + 1], sigmas[step:]


def split_at_denoise(sigmas: torch.Tensor, denoise: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(high, low) where low holds the last ``round(steps * denoise)`` steps.

    As in ComfyUI, at denoise 0 the high part is empty and the low part the last sigma alone.
    """
    steps = max(sigmas.shape[-1] - 1, 0)
    total = round(steps * denoise)
    return sigmas[:-total], sigmas[-(total + 1):]


def flip(sigmas: torch.Tensor) -> torch.Tensor:
    """Reversed (for unsampling); a leading 0 becomes 1e-4 so the first step can divide by it."""
    if len(sigmas) == 0:
        return sigmas
    out = sigmas.flip(0)
    if out[0] == 0:
        out[0] = 0.0001
    return out


def set_first(sigmas: torch.Tensor, sigma: float) -> torch.Tensor:
    out = sigmas.clone()
    out[0] = sigma
    return out


_SPACINGS = {
    "linear": lambda x: x,
    "cosine": lambda x: torch.sin(x * math.pi / 2),
    "sine": lambda x: 1 - torch.cos(x * math.pi / 2),
}


def extend_intermediate(sigmas: torch.Tensor, steps: int, start_at_sigma: float, end_at_sigma: float,
                        spacing: str) -> torch.Tensor:
    """Split every step whose starting sigma lies in [end_at_sigma, start_at_sigma] into
    ``steps`` smaller ones (a negative start means no upper bound)."""
    if spacing not in _SPACINGS:
        raise ValueError(f"unknown spacing {spacing!r}; expected one of {', '.join(_SPACINGS)}")
    upper = float("inf") if start_at_sigma < 0 else start_at_sigma
    fractions = _SPACINGS[spacing](torch.linspace(0, 1, steps + 1)[1:-1])
    out: list[float] = []
    for i in range(len(sigmas) - 1):
        current, following = sigmas[i], sigmas[i + 1]
        out.append(float(current))
        if end_at_sigma <= float(current) <= upper:
            out.extend((fractions * (following - current) + current).tolist())
    if len(sigmas) > 0:
        out.append(float(sigmas[-1]))
    return torch.tensor(out, dtype=torch.float32)


# Signed decimals, with or without a leading digit or an exponent ("-.5", "1e-3").
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def parse_manual(text: str) -> torch.Tensor:
    """Every number in ``text`` (comma, space or anything separated), in order."""
    return torch.tensor([float(v) for v in _NUMBER.findall(text)], dtype=torch.float32)
