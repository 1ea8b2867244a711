"""ComfyUI's schedulers: the list of sigmas a sampler walks, from the largest to 0."""

from __future__ import annotations

import math

import numpy as np
import torch

from opencomfy.diffusion.model_sampling import DiscreteSchedule


def _append_zero(sigmas) -> torch.Tensor:
    sigmas = torch.as_tensor(sigmas, dtype=torch.float32)
    return torch.cat([sigmas, sigmas.new_zeros(1)])


def normal(s: DiscreteSchedule, steps: int, *, sgm: bool = False) -> torch.Tensor:
    """Timesteps evenly spaced from the largest to the smallest training sigma."""
    start, end = float(s.timestep(torch.tensor(s.sigma_max))), float(s.timestep(torch.tensor(s.sigma_min)))
    append_zero = True
    if sgm:
        ts = torch.linspace(start, end, steps + 1)[:-1]
    else:
        if math.isclose(float(s.sigma(torch.tensor(end))), 0, abs_tol=1e-5):
            steps += 1
            append_zero = False
        ts = torch.linspace(start, end, steps)
    sigmas = s.sigma(ts)
    return _append_zero(sigmas) if append_zero else sigmas


def karras(s: DiscreteSchedule, steps: int, *, rho: float = 7.0) -> torch.Tensor:
    """Karras et al. (2022): evenly spaced in ``sigma ** (1 / rho)``."""
    ramp = torch.linspace(0, 1, steps)
    lo, hi = s.sigma_min ** (1 / rho), s.sigma_max ** (1 / rho)
    return _append_zero((hi + ramp * (lo - hi)) ** rho)


def exponential(s: DiscreteSchedule, steps: int) -> torch.Tensor:
    """Evenly spaced in ``log sigma``."""
    return _append_zero(torch.linspace(math.log(s.sigma_max), math.log(s.sigma_min), steps).exp())


def simple(s: DiscreteSchedule, steps: int) -> torch.Tensor:
    """Every ``len / steps``-th training sigma from the top."""
    stride = len(s.sigmas) / steps
    return _append_zero([float(s.sigmas[-(1 + int(i * stride))]) for i in range(steps)])


def ddim_uniform(s: DiscreteSchedule, steps: int) -> torch.Tensor:
    """DDIM's "leading" spacing: training timesteps 1, 1+k, 1+2k, ... reversed, then 0."""
    stride = max(len(s.sigmas) // steps, 1)
    picked = [float(s.sigmas[i]) for i in range(1, len(s.sigmas), stride)]
    return torch.tensor([*picked[::-1], 0.0], dtype=torch.float32)


def _beta_ppf(q: np.ndarray, a: float, b: float) -> np.ndarray:
    """Inverse CDF of Beta(a, b), by inverting a fine numerical CDF (no SciPy needed).

    The substitution x = sin(u)^2 removes the endpoint singularities of the density when
    a, b < 1, so a plain trapezoid rule is accurate.
    """
    u = np.linspace(0.0, np.pi / 2, 200001)
    x = np.sin(u) ** 2
    density = 2.0 * np.sin(u) ** (2 * a - 1) * np.cos(u) ** (2 * b - 1)
    cdf = np.concatenate([[0.0], np.cumsum((density[1:] + density[:-1]) / 2 * np.diff(u))])
    cdf /= cdf[-1]
    return np.interp(q, cdf, x)


def beta(s: DiscreteSchedule, steps: int, *, alpha: float = 0.6, beta_: float = 0.6) -> torch.Tensor:
    """Timesteps at the quantiles of a Beta(0.6, 0.6) distribution (more steps at both ends)."""
    total = len(s.sigmas) - 1
    quantiles = 1 - np.linspace(0, 1, steps, endpoint=False)
    timesteps = np.rint(_beta_ppf(quantiles, alpha, beta_) * total).astype(int)
    sigmas, last = [], None
    for t in timesteps:
        if t != last:
            sigmas.append(float(s.sigmas[t]))
        last = t
    return _append_zero(sigmas)


def kl_optimal(s: DiscreteSchedule, steps: int) -> torch.Tensor:
    """Evenly spaced in ``atan(sigma)`` (Align Your Steps' KL-optimal schedule)."""
    ramp = torch.linspace(0, 1, steps)
    sigmas = torch.tan(ramp * math.atan(s.sigma_min) + (1 - ramp) * math.atan(s.sigma_max))
    return _append_zero(sigmas)


def linear_quadratic(s: DiscreteSchedule, steps: int, *, threshold_noise: float = 0.025,
                     linear_steps: int | None = None) -> torch.Tensor:
    """Linear in noise level for the first half of the steps, then quadratic (Mochi's schedule)."""
    if steps == 1:
        return torch.tensor([s.sigma_max, 0.0])
    linear_steps = steps // 2 if linear_steps is None else linear_steps
    linear = [i * threshold_noise / linear_steps for i in range(linear_steps)]
    quadratic_steps = steps - linear_steps
    step_diff = linear_steps - threshold_noise * steps
    quad_coef = step_diff / (linear_steps * quadratic_steps ** 2)
    linear_coef = threshold_noise / linear_steps - 2 * step_diff / (quadratic_steps ** 2)
    const = quad_coef * linear_steps ** 2
    quadratic = [quad_coef * i ** 2 + linear_coef * i + const for i in range(linear_steps, steps)]
    schedule = torch.tensor([1.0 - x for x in linear + quadratic + [1.0]])
    return schedule * s.sigma_max


SCHEDULERS = {
    "simple": simple,
    "sgm_uniform": lambda s, steps: normal(s, steps, sgm=True),
    "karras": karras,
    "exponential": exponential,
    "ddim_uniform": ddim_uniform,
    "beta": beta,
    "normal": normal,
    "linear_quadratic": linear_quadratic,
    "kl_optimal": kl_optimal,
}


def calculate_sigmas(schedule: DiscreteSchedule, scheduler: str, steps: int) -> torch.Tensor:
    """The sigmas of ``steps`` steps of a named scheduler (``steps + 1`` values ending in 0)."""
    try:
        fn = SCHEDULERS[scheduler]
    except KeyError:
        raise ValueError(f"unknown scheduler {scheduler!r}") from None
    return fn(schedule, steps).float()
