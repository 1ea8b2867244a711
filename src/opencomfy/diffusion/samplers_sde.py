"""Stochastic samplers from the exponential-integrator papers, in data (x0) prediction.

Same interface as :mod:`samplers`. Written for discrete eps/v models, whose sample is
``x = x0 + sigma * eps`` (alpha = 1, half log-SNR lambda = -log sigma).

- ER-SDE-Solver-3 (Cui et al. 2023): an extended reverse-time SDE whose noise is scaled by a
  chosen function of lambda; stages 2 and 3 add first and second differences of the
  predictions with numerically integrated weights.
- SEEDS-2 / SEEDS-3 (Gonzalez et al. 2023): stochastic exponential Runge-Kutta with two or three
  model evaluations per step; the stage noises are correlated (one Brownian path per step).
- SA-Solver (Xue et al. 2023): stochastic Adams predictor-corrector, stochastic (tau = 1) only
  in the middle of the schedule.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from opencomfy.diffusion.model_sampling import DiscreteSchedule


def _er_noise_scaler(lam: torch.Tensor) -> torch.Tensor:
    """ER-SDE's default noise scale function of lambda (sigma here)."""
    return lam * ((lam ** 0.3).exp() + 10.0)


def er_sde(denoise, x, sigmas, *, noise, callback=None, s_noise=1.0, max_stage=3, noise_scaler=None):
    """ER-SDE; ``noise_scaler`` (a function of lambda) replaces the default noise scale: ``x``
    itself with ``s_noise`` 0 is the probability-flow ODE, ``x ** (eta + 1)`` the reverse-time SDE."""
    scaler = _er_noise_scaler if noise_scaler is None else noise_scaler
    lambdas = sigmas.float()                 # lambda_ER = sigma / alpha = sigma
    points = torch.arange(0, 200, dtype=torch.float32)
    old_x0 = old_dx0 = None
    for i in range(len(sigmas) - 1):
        s, s_next = float(sigmas[i]), float(sigmas[i + 1])
        x0 = denoise(x, s)
        stage = min(max_stage, i + 1)
        if s_next == 0:
            x = x0
        else:
            lam_s, lam_t = lambdas[i], lambdas[i + 1]
            r = scaler(lam_t) / scaler(lam_s)
            x = r * x + (1 - r) * x0
            if stage >= 2:
                dt = lam_t - lam_s
                # Left Riemann sums over 200 points from lam_t up to lam_s (the published rule).
                step = -dt / 200.0
                grid = lam_t + points * step
                scaled = scaler(grid)
                dx0 = (x0 - old_x0) / (lam_s - lambdas[i - 1])
                integral = torch.sum(1 / scaled) * step
                x = x + (dt + integral * scaler(lam_t)) * dx0
                if stage >= 3:
                    integral_u = torch.sum((grid - lam_s) / scaled) * step
                    ddx0 = (dx0 - old_dx0) / ((lam_s - lambdas[i - 2]) / 2)
                    x = x + (dt ** 2 / 2 + integral_u * scaler(lam_t)) * ddx0
                old_dx0 = dx0
            if s_noise > 0:
                spread = (lam_t ** 2 - lam_s ** 2 * r ** 2).sqrt().nan_to_num(nan=0.0)
                x = x + noise(s, s_next) * s_noise * spread
        old_x0 = x0
        callback and callback(i, x, x0)
    return x


def _stage(x, x0_terms, s: float, s_to: float, h_part: float, eta: float):
    """The exponential step from sigma ``s`` to ``s_to`` (log-sigma distance ``h_part``) with
    the noise damping exp(-eta h); ``x0_terms`` is the prediction already weighted."""
    return (s_to / s) * math.exp(-h_part * eta) * x + x0_terms


def seeds_2(denoise, x, sigmas, *, noise, callback=None, eta=1.0, s_noise=1.0, r=0.5, solver_type="phi_1"):
    """SEEDS-2: one midpoint evaluation at log-sigma fraction ``r``; ``phi_2`` weighs the two
    predictions with the second phi function (with r 1 and eta 0: exponential Heun)."""
    if solver_type not in ("phi_1", "phi_2"):
        raise ValueError(f"seeds_2: unknown solver_type {solver_type!r} (expected phi_1 or phi_2)")
    inject = eta > 0 and s_noise > 0
    for i in range(len(sigmas) - 1):
        s, s_next = float(sigmas[i]), float(sigmas[i + 1])
        x0 = denoise(x, s)
        if s_next == 0:
            x = x0
        else:
            h = math.log(s) - math.log(s_next)
            h_eta = h * (eta + 1)
            s_mid = math.exp(-(-math.log(s) + r * h))
            x_mid = _stage(x, -math.expm1(-r * h_eta) * x0, s, s_mid, r * h, eta)
            if inject:
                path = math.sqrt(-math.expm1(-2 * r * h * eta)) * noise(s, s_mid)
                x_mid = x_mid + path * s_mid * s_noise
            x0_mid = denoise(x_mid, s_mid)
            if solver_type == "phi_2":
                b_2 = _h_phi_2(-h_eta) / r
                x = _stage(x, -((_h_phi_1(-h_eta) - b_2) * x0 + b_2 * x0_mid), s, s_next, h, eta)
            else:
                mixed = torch.lerp(x0, x0_mid, 1 / (2 * r))
                x = _stage(x, -math.expm1(-h_eta) * mixed, s, s_next, h, eta)
            if inject:
                # the same Brownian path, decayed over the second part, plus its new increment
                seg = (r - 1) * h * eta
                path = path * math.exp(seg) + math.sqrt(-math.expm1(2 * seg)) * noise(s_mid, s_next)
                x = x + path * s_next * s_noise
        callback and callback(i, x, x0)
    return x


def _h_phi_1(z: float) -> float:
    return math.expm1(z)


def _h_phi_2(z: float) -> float:
    return (math.expm1(z) - z) / z


def seeds_3(denoise, x, sigmas, *, noise, callback=None, eta=1.0, s_noise=1.0, r_1=1 / 3, r_2=2 / 3):
    """SEEDS-3: evaluations at log-sigma fractions ``r_1`` and ``r_2`` of each step."""
    inject = eta > 0 and s_noise > 0
    for i in range(len(sigmas) - 1):
        s, s_next = float(sigmas[i]), float(sigmas[i + 1])
        x0 = denoise(x, s)
        if s_next == 0:
            x = x0
        else:
            h = math.log(s) - math.log(s_next)
            h_eta = h * (eta + 1)
            s_1 = math.exp(math.log(s) - r_1 * h)
            s_2 = math.exp(math.log(s) - r_2 * h)
            x_1 = _stage(x, -_h_phi_1(-r_1 * h_eta) * x0, s, s_1, r_1 * h, eta)
            if inject:
                path = math.sqrt(-math.expm1(-2 * r_1 * h * eta)) * noise(s, s_1)
                x_1 = x_1 + path * s_1 * s_noise
            x0_1 = denoise(x_1, s_1)
            a_2 = r_2 / r_1 * _h_phi_2(-r_2 * h_eta)
            a_1 = _h_phi_1(-r_2 * h_eta) - a_2
            x_2 = _stage(x, -(a_1 * x0 + a_2 * x0_1), s, s_2, r_2 * h, eta)
            if inject:
                seg = (r_1 - r_2) * h * eta
                path = path * math.exp(seg) + math.sqrt(-math.expm1(2 * seg)) * noise(s_1, s_2)
                x_2 = x_2 + path * s_2 * s_noise
            x0_2 = denoise(x_2, s_2)
            b_3 = _h_phi_2(-h_eta) / r_2
            b_1 = _h_phi_1(-h_eta) - b_3
            x = _stage(x, -(b_1 * x0 + b_3 * x0_2), s, s_next, h, eta)
            if inject:
                seg = (r_2 - 1) * h * eta
                path = path * math.exp(seg) + math.sqrt(-math.expm1(2 * seg)) * noise(s_2, s_next)
                x = x + path * s_next * s_noise
        callback and callback(i, x, x0)
    return x


# -- SA-Solver -------------------------------------------------------------------------------------

def sa_coefficients(nodes: list[float], lam_s: float, lam_t: float, tau: float) -> list[float]:
    """b_j = (1 + tau^2) * integral over [lam_s, lam_t] of exp(-(1 + tau^2)(lam_t - l)) L_j(l) dl,
    L_j the Lagrange basis on the ``nodes`` (lambdas of the predictions used)."""
    c = 1 + tau ** 2
    z, w = np.polynomial.legendre.leggauss(24)
    grid = (lam_t - lam_s) / 2 * z + (lam_t + lam_s) / 2
    weight = c * np.exp(-c * (lam_t - grid)) * (lam_t - lam_s) / 2 * w
    out = []
    for j, nj in enumerate(nodes):
        basis = np.ones_like(grid)
        for k, nk in enumerate(nodes):
            if k != j:
                basis *= (grid - nk) / (nj - nk)
        out.append(float(np.sum(weight * basis)))
    return out


def _schedule_of(denoise) -> DiscreteSchedule:
    """The model schedule behind a denoiser (for the default stochastic interval)."""
    obj = denoise
    for _ in range(4):
        schedule = getattr(getattr(obj, "model", None), "schedule", None)
        if schedule is not None:
            return schedule
        obj = getattr(obj, "inner", None)
        if obj is None:
            break
    return DiscreteSchedule()


def sa_solver(denoise, x, sigmas, *, noise, callback=None, tau_func=None, s_noise=1.0,
              predictor_order=3, corrector_order=4, use_pece=False, schedule=None):
    """Stochastic Adams: predictor of ``predictor_order`` then corrector of ``corrector_order``
    (reusing the evaluation at the predicted point unless ``use_pece``)."""
    steps = len(sigmas) - 1
    if steps < 1:
        return x
    if tau_func is None:
        schedule = schedule or _schedule_of(denoise)
        high, low = schedule.percent_to_sigma(0.2), schedule.percent_to_sigma(0.8)

        def default_tau(sigma):
            return 1.0 if high >= sigma >= low else 0.0

        tau_func = default_tau

    sig = [float(v) for v in sigmas]
    lam = [-math.log(v) if v > 0 else math.inf for v in sig]
    x_pred, x = x, x
    h = tau = 0.0
    step_noise = None
    history: list[torch.Tensor] = []
    lower_to_end = sig[-1] == 0
    for i in range(steps):
        x0 = denoise(x_pred, sig[i])
        history.append(x0)
        del history[:-max(predictor_order, corrector_order)]
        p_order = min(predictor_order, len(history))
        c_order = 0 if i == 0 or (sig[i + 1] == 0 and not use_pece) else min(corrector_order, len(history))
        if lower_to_end:
            p_order = min(p_order, steps - 1 - i)
            c_order = min(c_order, steps - i)
        if c_order == 0:
            x = x_pred
        else:
            b = sa_coefficients(lam[i - c_order + 1:i + 1], lam[i - 1], lam[i], tau)
            x = sig[i] / sig[i - 1] * math.exp(-(tau ** 2) * h) * x + sum(
                w * p for w, p in zip(b, history[-c_order:], strict=False))
            if step_noise is not None:
                x = x + step_noise
            if use_pece:
                x0 = denoise(x, sig[i])
                history[-1] = x0
        if sig[i + 1] == 0:
            x_pred = x0
        else:
            tau = tau_func(sig[i + 1])
            b = sa_coefficients(lam[i - p_order + 1:i + 1], lam[i], lam[i + 1], tau)
            h = lam[i + 1] - lam[i]
            x_pred = sig[i + 1] / sig[i] * math.exp(-(tau ** 2) * h) * x + sum(
                w * p for w, p in zip(b, history[-p_order:], strict=False))
            step_noise = None
            if tau > 0 and s_noise > 0:
                step_noise = noise(sig[i], sig[i + 1]) * sig[i + 1] * math.sqrt(
                    -math.expm1(-2 * tau ** 2 * h)) * s_noise
                x_pred = x_pred + step_noise
        callback and callback(i, x_pred, x0)
    return x_pred


def sa_solver_pece(denoise, x, sigmas, *, noise, callback=None, **kwargs):
    return sa_solver(denoise, x, sigmas, noise=noise, callback=callback, use_pece=True, **kwargs)
