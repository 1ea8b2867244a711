"""DPM-Solver (Lu et al. 2022) in its noise-prediction form: ``dpm_fast`` and ``dpm_adaptive``.

Both work in ``t = -log sigma`` between the first sigma and the smallest positive one, and end
there (not at sigma 0), as ComfyUI runs them: the list of sigmas only sets the end points and,
for ``dpm_fast``, the number of model evaluations.

- fast: uniform steps in t, third order where the budget allows (orders 3, ..., 3, 2, 1 or 3, ...,
  3, n mod 3) so that the total number of evaluations equals the number of steps.
- adaptive: an embedded pair (second order with r1 = 1/3 inside third order) estimates the
  local error; a PID step-size controller keeps it within rtol / atol.
"""

from __future__ import annotations

import math

import torch


class _Solver:
    """The single-step DPM-Solver updates over one interval [t, t_next], with eps cached."""

    def __init__(self, denoise, callback=None):
        self.denoise = denoise
        self.callback = callback
        self.evaluations = 0

    @staticmethod
    def sigma(t):
        return t.neg().exp()

    def eps(self, cache: dict, key: str, x, t):
        if key not in cache:
            s = self.sigma(t)
            cache[key] = (x - self.denoise(x, float(s))) / s
            self.evaluations += 1
        return cache[key]

    def step_1(self, x, t, t_next, cache):
        h = t_next - t
        return x - self.sigma(t_next) * h.expm1() * self.eps(cache, "eps", x, t)

    def step_2(self, x, t, t_next, cache, r1=0.5):
        h = t_next - t
        eps = self.eps(cache, "eps", x, t)
        s1 = t + r1 * h
        u1 = x - self.sigma(s1) * (r1 * h).expm1() * eps
        eps_r1 = self.eps(cache, "eps_r1", u1, s1)
        return (x - self.sigma(t_next) * h.expm1() * eps
                - self.sigma(t_next) / (2 * r1) * h.expm1() * (eps_r1 - eps))

    def step_3(self, x, t, t_next, cache, r1=1 / 3, r2=2 / 3):
        h = t_next - t
        eps = self.eps(cache, "eps", x, t)
        s1, s2 = t + r1 * h, t + r2 * h
        u1 = x - self.sigma(s1) * (r1 * h).expm1() * eps
        eps_r1 = self.eps(cache, "eps_r1", u1, s1)
        u2 = (x - self.sigma(s2) * (r2 * h).expm1() * eps
              - self.sigma(s2) * (r2 / r1) * ((r2 * h).expm1() / (r2 * h) - 1) * (eps_r1 - eps))
        eps_r2 = self.eps(cache, "eps_r2", u2, s2)
        return (x - self.sigma(t_next) * h.expm1() * eps
                - self.sigma(t_next) / r2 * (h.expm1() / h - 1) * (eps_r2 - eps))


def _end_points(sigmas) -> tuple[torch.Tensor, torch.Tensor]:
    sigma_min = sigmas[-1] if float(sigmas[-1]) > 0 else sigmas[-2]
    return -sigmas[0].float().log(), -sigma_min.float().log()


def dpm_fast(denoise, x, sigmas, *, noise=None, callback=None):
    n = len(sigmas) - 1
    if n < 1:
        return x
    t_start, t_end = _end_points(sigmas)
    solver = _Solver(denoise)
    m = n // 3 + 1
    ts = torch.linspace(float(t_start), float(t_end), m + 1)
    orders = [3] * (m - 2) + [2, 1] if n % 3 == 0 else [3] * (m - 1) + [n % 3]
    for i, order in enumerate(orders):
        cache: dict = {}
        t, t_next = ts[i], ts[i + 1]
        eps = solver.eps(cache, "eps", x, t)
        x0 = x - solver.sigma(t) * eps
        step = {1: solver.step_1, 2: solver.step_2, 3: solver.step_3}[order]
        x = step(x, t, t_next, cache)
        callback and callback(min(solver.evaluations, n) - 1, x, x0)
    return x


class _PIDController:
    """Step-size control: scale h by (1/error)^(1/order), softly limited, accept if not shrunk much."""

    def __init__(self, h: float, order: float, accept_safety: float = 0.81, eps: float = 1e-8,
                 pcoeff: float = 0.0, icoeff: float = 1.0, dcoeff: float = 0.0):
        self.h = h
        self.b1 = (pcoeff + icoeff + dcoeff) / order
        self.b2 = -(pcoeff + 2 * dcoeff) / order
        self.b3 = dcoeff / order
        self.accept_safety, self.eps = accept_safety, eps
        self.errors: list[float] = []

    def propose(self, error: float) -> bool:
        inverse = 1 / (float(error) + self.eps)
        if not self.errors:
            self.errors = [inverse, inverse, inverse]
        self.errors[0] = inverse
        factor = self.errors[0] ** self.b1 * self.errors[1] ** self.b2 * self.errors[2] ** self.b3
        factor = 1 + math.atan(factor - 1)
        accept = factor >= self.accept_safety
        if accept:
            self.errors[2], self.errors[1] = self.errors[1], self.errors[0]
        self.h *= factor
        return accept


def dpm_adaptive(denoise, x, sigmas, *, noise=None, callback=None, order=3, rtol=0.05, atol=0.0078,
                 h_init=0.05, accept_safety=0.81):
    if len(sigmas) <= 1:
        return x
    if order not in (2, 3):
        raise ValueError("dpm_adaptive's order must be 2 or 3")
    t_start, t_end = _end_points(sigmas)
    solver = _Solver(denoise)
    pid = _PIDController(abs(h_init), order, accept_safety)
    atol_t, rtol_t = torch.tensor(atol), torch.tensor(rtol)
    s, x_prev, steps = t_start, x, 0
    total = len(sigmas) - 1
    while s < t_end - 1e-5:
        cache: dict = {}
        t = torch.minimum(t_end, s + pid.h)
        eps = solver.eps(cache, "eps", x, s)
        x0 = x - solver.sigma(s) * eps
        if order == 2:
            low, high = solver.step_1(x, s, t, cache), solver.step_2(x, s, t, cache)
        else:
            low, high = solver.step_2(x, s, t, cache, r1=1 / 3), solver.step_3(x, s, t, cache)
        delta = torch.maximum(atol_t, rtol_t * torch.maximum(low.abs(), x_prev.abs()))
        error = torch.linalg.norm((low - high) / delta) / low.numel() ** 0.5
        if pid.propose(error):
            x_prev, x, s = low, high, t
        steps += 1
        callback and callback(min(steps, total) - 1, x, x0)
    return x
