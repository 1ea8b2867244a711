"""Multistep samplers (they reuse the model's earlier outputs) and the CFG++ family.

Same interface as :mod:`samplers`: ``sampler(denoise, x, sigmas, *, noise, callback) -> x``.
The CFG++ samplers (Chung et al., 2024) step along the unguided prediction
(``denoise.last_uncond``) and keep only the guided one as the landing point, which allows
small guidance scales without the usual off-manifold drift.
"""

from __future__ import annotations

import math

import torch

from opencomfy.diffusion.samplers_base import ancestral_step, to_d


def _lagrange_weights(nodes: list[float], a: float, b: float, weight=None, points: int = 16) -> list[float]:
    """Integral over [a, b] of each Lagrange basis polynomial on ``nodes`` (times ``weight``).

    Gauss-Legendre with 16 points: exact for the polynomials, near exact for smooth weights.
    """
    import numpy as np

    z, w = np.polynomial.legendre.leggauss(points)
    tau = (b - a) / 2 * z + (a + b) / 2
    extra = np.ones_like(tau) if weight is None else weight(tau)
    out = []
    for j, nj in enumerate(nodes):
        basis = np.ones_like(tau)
        for k, nk in enumerate(nodes):
            if k != j:
                basis *= (tau - nk) / (nj - nk)
        out.append(float((b - a) / 2 * np.sum(w * basis * extra)))
    return out


# -- iPNDM (Zhang & Chen 2022; variable steps: Zhou et al. 2024) -------------------------------

_AB = {1: (1.0,), 2: (3 / 2, -1 / 2), 3: (23 / 12, -16 / 12, 5 / 12), 4: (55 / 24, -59 / 24, 37 / 24, -9 / 24)}


def ipndm(denoise, x, sigmas, *, noise=None, callback=None, max_order=4):
    """Adams-Bashforth with the fixed-step weights on the last derivatives; the step to 0 lands
    on the prediction."""
    history: list[torch.Tensor] = []     # newest first
    for i in range(len(sigmas) - 1):
        s, s_next = float(sigmas[i]), float(sigmas[i + 1])
        x0 = denoise(x, s)
        history.insert(0, to_d(x, s, x0))
        del history[max_order:]
        order = min(max_order, i + 1)
        if s_next == 0:
            x = x0
        else:
            x = x + (s_next - s) * sum(w * d for w, d in zip(_AB[order], history, strict=False))
        callback and callback(i, x, x0)
    return x


def _ipndm_v_weights(h: list[float], order: int) -> list[float]:
    """Variable-step weights of iPNDM-v for steps ``h = [h_n, h_n-1, h_n-2, h_n-3]`` (newest
    first, positive or negative alike).

    Written as Adams-Bashforth in divided-difference form: the weight of the first difference
    is exact (h_n / 2h_n-1); the higher ones use the grouping of Zhou et al.'s reference
    implementation, which ComfyUI runs. (It equals the fixed-step weights for equal steps, but
    for unequal ones it is not the exact interpolating rule.)
    """
    hn = h[0]
    if order == 1:
        return [1.0]
    h1 = h[1]
    c = [1 + hn / (2 * h1), -hn / (2 * h1)]
    if order == 2:
        return c
    h2 = h[2]
    ratio = hn * (hn + h1) / (h1 * (h1 + h2))
    t1 = (1 - hn / (3 * (hn + h1)) * ratio) / 2
    # t1 times the second difference d_n - (1 + h1/h2) d_n-1 + (h1/h2) d_n-2
    c = [c[0] + t1, c[1] - (1 + h1 / h2) * t1, t1 * h1 / h2]
    if order == 3:
        return c
    h3 = h[3]
    p = h1 * (h1 + h2) / (h2 * (h2 + h3))
    t2 = ((1 - hn / (3 * (hn + h1))) / 2 + (1 - hn / (2 * (hn + h1))) * hn / (6 * (hn + h1 + h2))) \
        * hn * (hn + h1) * (hn + h1 + h2) / (h1 * (h1 + h2) * (h1 + h2 + h3))
    return [c[0] + t2, c[1] - (1 + h1 / h2 + p) * t2, c[2] + (h1 / h2 + p * (1 + h2 / h3)) * t2,
            -t2 * p * h1 / h2]


def ipndm_v(denoise, x, sigmas, *, noise=None, callback=None, max_order=4):
    """iPNDM with weights adapted to unequal steps in sigma."""
    t = [float(s) for s in sigmas]
    history: list[torch.Tensor] = []
    for i in range(len(t) - 1):
        x0 = denoise(x, t[i])
        history.insert(0, to_d(x, t[i], x0))
        del history[max_order:]
        order = min(max_order, i + 1)
        if t[i + 1] == 0:
            x = x0
        else:
            steps = [t[i + 1 - k] - t[i - k] for k in range(order)]
            x = x + steps[0] * sum(w * d for w, d in zip(_ipndm_v_weights(steps, order), history, strict=False))
        callback and callback(i, x, x0)
    return x


# -- DEIS (Zhang & Chen 2022), time-quadratic "tAB" variant -------------------------------------

# The VP-SDE whose time DEIS integrates in: fitted to EDM's sigma range [0.002, 80] at t = 1e-3
# and t = 1, as the reference implementation ComfyUI runs does.
def _vp_parameters(sigma_min=0.002, sigma_max=80.0, eps_s=1e-3):
    beta_d = 2 * (math.log(sigma_min ** 2 + 1) / eps_s - math.log(sigma_max ** 2 + 1)) / (eps_s - 1)
    beta_min = math.log(sigma_max ** 2 + 1) - 0.5 * beta_d
    return beta_min, beta_d


def _sigma_to_vp_time(sigma: float, beta_min: float, beta_d: float) -> float:
    """Invert sigma(t) = sqrt(exp(beta_d t^2 / 2 + beta_min t) - 1)."""
    return (math.sqrt(beta_min ** 2 + 2 * beta_d * math.log(sigma ** 2 + 1)) - beta_min) / beta_d


def deis_coefficients(sigmas, max_order: int = 3) -> list[list[float]]:
    """Per step, the weights of the current and earlier derivatives (empty for Euler steps).

    DEIS fits a polynomial in VP time t through the last derivatives dx/dsigma and integrates
    it against dsigma/dt over the step: weight_j = integral of L_j(t) sigma'(t) dt.
    """
    beta_min, beta_d = _vp_parameters()
    t = [_sigma_to_vp_time(float(s), beta_min, beta_d) for s in sigmas]

    def dsigma_dt(tau):
        import numpy as np

        growth = 0.5 * beta_d * tau ** 2 + beta_min * tau
        return (beta_d * tau + beta_min) * np.exp(growth) / (2 * np.sqrt(np.expm1(growth)))

    out = []
    for i in range(len(t) - 1):
        order = min(i + 1, max_order)
        if order == 1:
            out.append([])
            continue
        nodes = [t[i - k] for k in range(order)]
        out.append(_lagrange_weights(nodes, t[i], t[i + 1], dsigma_dt, points=48))
    return out


def deis(denoise, x, sigmas, *, noise=None, callback=None, max_order=3):
    coefficients = deis_coefficients(sigmas, max_order)
    history: list[torch.Tensor] = []
    for i in range(len(sigmas) - 1):
        s, s_next = float(sigmas[i]), float(sigmas[i + 1])
        x0 = denoise(x, s)
        history.insert(0, to_d(x, s, x0))
        del history[max_order:]
        weights = coefficients[i]
        if s_next <= 0 or not weights:
            x = x + (s_next - s) * history[0]
        else:
            x = x + sum(w * d for w, d in zip(weights, history, strict=False))
        callback and callback(i, x, x0)
    return x


# -- CFG++ --------------------------------------------------------------------------------------

def euler_cfg_pp(denoise, x, sigmas, *, noise=None, callback=None):
    """Euler with CFG++: from the guided prediction, along the unguided direction."""
    return euler_ancestral_cfg_pp(denoise, x, sigmas, noise=noise, callback=callback, eta=0.0)


def euler_ancestral_cfg_pp(denoise, x, sigmas, *, noise, callback=None, eta=1.0):
    for i in range(len(sigmas) - 1):
        s, s_next = float(sigmas[i]), float(sigmas[i + 1])
        x0 = denoise(x, s)
        if s_next == 0:
            x = x0
        else:
            down, up = ancestral_step(s, s_next, eta)
            x = x0 + to_d(x, s, denoise.last_uncond) * down
            if eta > 0:
                x = x + noise(s, s_next) * up
        callback and callback(i, x, x0)
    return x


def dpmpp_2m_cfg_pp(denoise, x, sigmas, *, noise=None, callback=None):
    """DPM-Solver++(2M) on the unguided predictions, landing from the guided one."""
    old_uncond = None
    for i in range(len(sigmas) - 1):
        s, s_next = float(sigmas[i]), float(sigmas[i + 1])
        x0 = denoise(x, s)
        uncond = denoise.last_uncond
        if s_next == 0:
            x = x0
        else:
            h = math.log(s) - math.log(s_next)
            mix = -math.exp(-h) * uncond
            if old_uncond is not None:
                r = (math.log(float(sigmas[i - 1])) - math.log(s)) / h
                mix = mix - math.expm1(-h) / (2 * r) * (x0 - old_uncond)
            x = x0 + mix + math.exp(-h) * x
        old_uncond = uncond
        callback and callback(i, x, x0)
    return x


def dpmpp_2s_ancestral_cfg_pp(denoise, x, sigmas, *, noise, callback=None, eta=1.0):
    """DPM-Solver++(2S) ancestral on the unguided predictions; the guidance (guided minus
    unguided at the step's start) is added back at the end of the step."""
    for i in range(len(sigmas) - 1):
        s, s_next = float(sigmas[i]), float(sigmas[i + 1])
        x0 = denoise(x, s)
        uncond = denoise.last_uncond
        guidance = x0 - uncond
        down, up = ancestral_step(s, s_next, eta)
        if down == 0:
            x = uncond.clone()
        else:
            h = math.log(s) - math.log(down)
            mid = math.exp(math.log(s) - 0.5 * h)
            x_mid = (mid / s) * x - math.expm1(-0.5 * h) * uncond
            denoise(x_mid, mid)
            x = (down / s) * x - math.expm1(-h) * denoise.last_uncond
        if s_next > 0:
            x = x + noise(s, s_next) * up
        x = x + guidance
        callback and callback(i, x, x0)
    return x


# -- RES multistep (Zhang et al. 2023, "Improved order analysis of exponential integrators") ----

def _phi1(z: float) -> float:
    return math.expm1(z) / z


def _phi2(z: float) -> float:
    return (_phi1(z) - 1.0) / z


def res_multistep(denoise, x, sigmas, *, noise, callback=None, eta=0.0, cfg_pp=False):
    """Second-order exponential multistep in log sigma, with the coefficients that keep second
    order for unequal steps; the first step (and any step to 0) is Euler."""
    old_x0 = old_down = None
    for i in range(len(sigmas) - 1):
        s, s_next = float(sigmas[i]), float(sigmas[i + 1])
        x0 = denoise(x, s)
        uncond = denoise.last_uncond if cfg_pp else x0
        down, up = ancestral_step(s, s_next, eta)
        if down == 0 or old_x0 is None or old_down is None:  # both are set together, after step 0
            x = x0 + to_d(x, s, uncond) * down if cfg_pp else x + to_d(x, s, x0) * (down - s)
        else:
            h = math.log(s) - math.log(down)
            c2 = (math.log(old_down) - math.log(float(sigmas[i - 1]))) / h
            p1, p2 = _phi1(-h), _phi2(-h)
            b1, b2 = p1 - p2 / c2, p2 / c2
            if cfg_pp:
                x = x + (x0 - uncond)
            x = math.exp(-h) * x + h * (b1 * uncond + b2 * old_x0)
        if s_next > 0 and noise is not None:   # drawn even when up is 0, so later draws stay in step with ComfyUI
            x = x + noise(s, s_next) * up
        old_x0, old_down = uncond, down
        callback and callback(i, x, x0)
    return x


def res_multistep_plain(denoise, x, sigmas, *, noise=None, callback=None):
    return res_multistep(denoise, x, sigmas, noise=noise, callback=callback)


def res_multistep_cfg_pp(denoise, x, sigmas, *, noise=None, callback=None):
    return res_multistep(denoise, x, sigmas, noise=noise, callback=callback, cfg_pp=True)


def res_multistep_ancestral(denoise, x, sigmas, *, noise, callback=None, eta=1.0):
    return res_multistep(denoise, x, sigmas, noise=noise, callback=callback, eta=eta)


def res_multistep_ancestral_cfg_pp(denoise, x, sigmas, *, noise, callback=None, eta=1.0):
    return res_multistep(denoise, x, sigmas, noise=noise, callback=callback, eta=eta, cfg_pp=True)


# -- Gradient estimation (Permenter & Yuan 2024) -------------------------------------------------

def gradient_estimation(denoise, x, sigmas, *, noise=None, callback=None, ge_gamma=2.0, cfg_pp=False):
    """Euler plus a momentum term: the change of the denoising direction since the last step,
    scaled by (gamma - 1), extrapolates the direction to the step's end."""
    old_d = None
    for i in range(len(sigmas) - 1):
        s, s_next = float(sigmas[i]), float(sigmas[i + 1])
        x0 = denoise(x, s)
        d = to_d(x, s, denoise.last_uncond if cfg_pp else x0)
        dt = s_next - s
        if s_next == 0:
            x = x0
        else:
            x = x0 + d * s_next if cfg_pp else x + d * dt
            if old_d is not None:
                x = x + (ge_gamma - 1) * (d - old_d) * dt
        old_d = d
        callback and callback(i, x, x0)
    return x


def gradient_estimation_cfg_pp(denoise, x, sigmas, *, noise=None, callback=None, ge_gamma=2.0):
    return gradient_estimation(denoise, x, sigmas, noise=noise, callback=callback, ge_gamma=ge_gamma, cfg_pp=True)
