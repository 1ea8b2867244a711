"""Samplers over a list of sigmas, under ComfyUI's names (every name of KSampler's list).

Each sampler is ``sampler(denoise, x, sigmas, *, noise, callback) -> x`` where
``denoise(x, sigma) -> x0`` is the guided model (with ``last_uncond``, the unguided
prediction of its last call, for the CFG++ samplers), ``noise(sigma, sigma_next) -> tensor``
gives fresh seeded standard normal noise for the stochastic samplers, and
``callback(i, x, x0)`` runs after every step (progress, previews, interrupts). They follow
Karras et al. (2022), the DPM-Solver papers and the papers named in each module; they take
the same steps and draw the same noise, in the same order, as ComfyUI, so that a seed gives
ComfyUI's image. :data:`NOISE_SOURCE` says which noise each one expects
(:mod:`noise_samplers`: a Brownian tree for the SDE samplers, else independent draws).
"""

from __future__ import annotations

import math

import numpy as np

from opencomfy.diffusion import samplers_multistep as multistep
from opencomfy.diffusion import samplers_sde as sde
from opencomfy.diffusion.dpm_solver import dpm_adaptive, dpm_fast
from opencomfy.diffusion.samplers_base import ancestral_step, to_d
from opencomfy.diffusion.unipc import uni_pc, uni_pc_bh2

_to_d = to_d


def euler(denoise, x, sigmas, *, noise=None, callback=None):
    for i in range(len(sigmas) - 1):
        s, s_next = float(sigmas[i]), float(sigmas[i + 1])
        x0 = denoise(x, s)
        x = x + _to_d(x, s, x0) * (s_next - s)
        callback and callback(i, x, x0)
    return x


def euler_ancestral(denoise, x, sigmas, *, noise, callback=None, eta=1.0):
    for i in range(len(sigmas) - 1):
        s, s_next = float(sigmas[i]), float(sigmas[i + 1])
        x0 = denoise(x, s)
        down, up = ancestral_step(s, s_next, eta)
        x = x + _to_d(x, s, x0) * (down - s)
        if s_next > 0:
            x = x + noise(s, s_next) * up
        callback and callback(i, x, x0)
    return x


def heun(denoise, x, sigmas, *, noise=None, callback=None):
    for i in range(len(sigmas) - 1):
        s, s_next = float(sigmas[i]), float(sigmas[i + 1])
        x0 = denoise(x, s)
        d = _to_d(x, s, x0)
        if s_next == 0:
            x = x + d * (s_next - s)
        else:
            x2 = x + d * (s_next - s)
            d2 = _to_d(x2, s_next, denoise(x2, s_next))
            x = x + (d + d2) / 2 * (s_next - s)
        callback and callback(i, x, x0)
    return x


def _dpm_2_step(denoise, x, s, s_target, d):
    """Midpoint step (in log sigma) from s towards s_target."""
    mid = math.exp((math.log(s) + math.log(s_target)) / 2)
    x2 = x + d * (mid - s)
    return x + _to_d(x2, mid, denoise(x2, mid)) * (s_target - s)


def dpm_2(denoise, x, sigmas, *, noise=None, callback=None):
    for i in range(len(sigmas) - 1):
        s, s_next = float(sigmas[i]), float(sigmas[i + 1])
        x0 = denoise(x, s)
        d = _to_d(x, s, x0)
        x = x + d * (s_next - s) if s_next == 0 else _dpm_2_step(denoise, x, s, s_next, d)
        callback and callback(i, x, x0)
    return x


def dpm_2_ancestral(denoise, x, sigmas, *, noise, callback=None, eta=1.0):
    for i in range(len(sigmas) - 1):
        s, s_next = float(sigmas[i]), float(sigmas[i + 1])
        x0 = denoise(x, s)
        down, up = ancestral_step(s, s_next, eta)
        d = _to_d(x, s, x0)
        x = x + d * (down - s) if down == 0 else _dpm_2_step(denoise, x, s, down, d)
        if down != 0:
            x = x + noise(s, s_next) * up
        callback and callback(i, x, x0)
    return x


def _lms_coefficient(order: int, t: np.ndarray, i: int, j: int) -> float:
    """Integral over [t_i, t_i+1] of the j-th Lagrange basis polynomial on the last points."""
    nodes = [t[i - k] for k in range(order)]

    def basis(tau):
        prod = np.ones_like(tau)
        for k in range(order):
            if k != j:
                prod *= (tau - nodes[k]) / (nodes[j] - nodes[k])
        return prod

    # Gauss-Legendre is exact for these polynomials (degree < order <= 4).
    points, weights = np.polynomial.legendre.leggauss(8)
    a, b = t[i], t[i + 1]
    tau = (b - a) / 2 * points + (a + b) / 2
    return float((b - a) / 2 * np.sum(weights * basis(tau)))


def lms(denoise, x, sigmas, *, noise=None, callback=None, order=4):
    t = sigmas.double().cpu().numpy()
    history = []
    for i in range(len(sigmas) - 1):
        s = float(sigmas[i])
        x0 = denoise(x, s)
        history.append(_to_d(x, s, x0))
        history = history[-order:]
        if t[i + 1] == 0:
            x = x0
        else:
            current = min(i + 1, order)
            coeffs = [_lms_coefficient(current, t, i, j) for j in range(current)]
            x = x + sum(c * d for c, d in zip(coeffs, reversed(history), strict=False))
        callback and callback(i, x, x0)
    return x


def dpmpp_2m(denoise, x, sigmas, *, noise=None, callback=None):
    """DPM-Solver++(2M): second-order multistep in log sigma."""
    old_x0 = None
    h_last = None
    for i in range(len(sigmas) - 1):
        s, s_next = float(sigmas[i]), float(sigmas[i + 1])
        x0 = denoise(x, s)
        if s_next == 0:
            x = x0
        else:
            h = math.log(s) - math.log(s_next)
            if old_x0 is None or h_last is None:  # first step: no history yet
                d = x0
            else:
                r = h_last / h
                d = (1 + 1 / (2 * r)) * x0 - (1 / (2 * r)) * old_x0
            x = (s_next / s) * x - math.expm1(-h) * d
            h_last = h
        old_x0 = x0
        callback and callback(i, x, x0)
    return x


def dpmpp_2s_ancestral(denoise, x, sigmas, *, noise, callback=None, eta=1.0):
    """DPM-Solver++(2S) with ancestral noise."""
    for i in range(len(sigmas) - 1):
        s, s_next = float(sigmas[i]), float(sigmas[i + 1])
        x0 = denoise(x, s)
        down, up = ancestral_step(s, s_next, eta)
        if down == 0:
            x = x + _to_d(x, s, x0) * (down - s)
        else:
            h = math.log(s) - math.log(down)
            mid = math.exp(-(-math.log(s) + 0.5 * h))
            x2 = (mid / s) * x - math.expm1(-0.5 * h) * x0
            x0_2 = denoise(x2, mid)
            x = (down / s) * x - math.expm1(-h) * x0_2
        if s_next > 0:
            x = x + noise(s, s_next) * up
        callback and callback(i, x, x0)
    return x


def dpmpp_sde(denoise, x, sigmas, *, noise, callback=None, eta=1.0, r=0.5):
    """DPM-Solver++ (stochastic, two evaluations per step)."""
    for i in range(len(sigmas) - 1):
        s, s_next = float(sigmas[i]), float(sigmas[i + 1])
        x0 = denoise(x, s)
        if s_next == 0:
            x = x + _to_d(x, s, x0) * (s_next - s)
        else:
            t, t_next = -math.log(s), -math.log(s_next)
            h = t_next - t
            s_mid = math.exp(-(t + h * r))
            fac = 1 / (2 * r)
            down, up = ancestral_step(s, s_mid, eta)
            x2 = (down / s) * x - (down / s - 1) * x0 + noise(s, s_mid) * up
            x0_2 = denoise(x2, s_mid)
            down, up = ancestral_step(s, s_next, eta)
            mixed = (1 - fac) * x0 + fac * x0_2
            x = (down / s) * x - (down / s - 1) * mixed
            x = x + noise(s, s_next) * up
        callback and callback(i, x, x0)
    return x


def dpmpp_2m_sde(denoise, x, sigmas, *, noise, callback=None, eta=1.0, solver_type="midpoint"):
    """DPM-Solver++(2M) SDE."""
    old_x0, h_last = None, None
    for i in range(len(sigmas) - 1):
        s, s_next = float(sigmas[i]), float(sigmas[i + 1])
        x0 = denoise(x, s)
        if s_next == 0:
            x = x0
        else:
            h = math.log(s) - math.log(s_next)
            eta_h = eta * h
            x = (s_next / s) * math.exp(-eta_h) * x + (-math.expm1(-h - eta_h)) * x0
            if old_x0 is not None and h_last is not None:
                r = h_last / h
                if solver_type == "heun":
                    x = x + ((-math.expm1(-h - eta_h)) / (-h - eta_h) + 1) * (1 / r) * (x0 - old_x0)
                else:
                    x = x + 0.5 * (-math.expm1(-h - eta_h)) * (1 / r) * (x0 - old_x0)
            if eta:
                x = x + noise(s, s_next) * s_next * (-math.expm1(-2 * eta_h)) ** 0.5
            h_last = h
        old_x0 = x0
        callback and callback(i, x, x0)
    return x


def dpmpp_3m_sde(denoise, x, sigmas, *, noise, callback=None, eta=1.0):
    """DPM-Solver++(3M) SDE."""
    x0_1 = x0_2 = None
    h_1 = h_2 = None
    for i in range(len(sigmas) - 1):
        s, s_next = float(sigmas[i]), float(sigmas[i + 1])
        x0 = denoise(x, s)
        if s_next == 0:
            x = x0
        else:
            h = math.log(s) - math.log(s_next)
            h_eta = h * (eta + 1)
            x = math.exp(-h_eta) * x + (-math.expm1(-h_eta)) * x0
            # The step sizes are recorded together with the x0 history they belong to.
            if x0_2 is not None and h_1 is not None and h_2 is not None:
                r0, r1 = h_1 / h, h_2 / h
                d1_0, d1_1 = (x0 - x0_1) / r0, (x0_1 - x0_2) / r1
                d1 = d1_0 + (d1_0 - d1_1) * r0 / (r0 + r1)
                d2 = (d1_0 - d1_1) / (r0 + r1)
                phi_2 = math.expm1(-h_eta) / h_eta + 1
                phi_3 = phi_2 / h_eta - 0.5
                x = x + phi_2 * d1 - phi_3 * d2
            elif x0_1 is not None and h_1 is not None:
                r = h_1 / h
                d = (x0 - x0_1) / r
                phi_2 = math.expm1(-h_eta) / h_eta + 1
                x = x + phi_2 * d
            if eta:
                x = x + noise(s, s_next) * s_next * (-math.expm1(-2 * h * eta)) ** 0.5
            h_1, h_2 = h, h_1
            x0_1, x0_2 = x0, x0_1
        callback and callback(i, x, x0)
    return x


def lcm(denoise, x, sigmas, *, noise, callback=None):
    """Latent consistency sampling: jump to x0, re-noise to the next sigma."""
    for i in range(len(sigmas) - 1):
        s_next = float(sigmas[i + 1])
        x0 = denoise(x, float(sigmas[i]))
        x = x0
        if s_next > 0:
            x = x + noise(float(sigmas[i]), s_next) * s_next
        callback and callback(i, x, x0)
    return x


def ddpm(denoise, x, sigmas, *, noise, callback=None):
    """DDPM's ancestral step (the posterior mean plus its noise), written in sigmas."""
    for i in range(len(sigmas) - 1):
        s, s_next = float(sigmas[i]), float(sigmas[i + 1])
        x0 = denoise(x, s)
        eps = _to_d(x, s, x0)
        ac, ac_next = 1 / (s * s + 1), 1 / (s_next * s_next + 1)
        alpha = ac / ac_next
        vp = x / (1 + s * s) ** 0.5
        mean = (1 / alpha) ** 0.5 * (vp - (1 - alpha) * eps / (1 - ac) ** 0.5)
        if s_next > 0:
            mean = mean + ((1 - alpha) * (1 - ac_next) / (1 - ac)) ** 0.5 * noise(s, s_next)
            x = mean * (1 + s_next * s_next) ** 0.5
        else:
            x = mean
        callback and callback(i, x, x0)
    return x


def dpmpp_2m_sde_heun(denoise, x, sigmas, *, noise, callback=None):
    return dpmpp_2m_sde(denoise, x, sigmas, noise=noise, callback=callback, solver_type="heun")


def heunpp2(denoise, x, sigmas, *, noise=None, callback=None):
    """Heun++ (second variant): up to three evaluations per step, at this sigma and the next
    two, their directions weighted by each sigma relative to the first one."""
    t = [float(v) for v in sigmas]
    end = t[-1]
    for i in range(len(t) - 1):
        s, s_next = t[i], t[i + 1]
        x0 = denoise(x, s)
        d = _to_d(x, s, x0)
        dt = s_next - s
        if s_next == end:
            x = x + d * dt
        else:
            x2 = x + d * dt
            d2 = _to_d(x2, s_next, denoise(x2, s_next))
            if t[i + 2] == end:
                w2 = s_next / (2 * t[0])
                x = x + (d * (1 - w2) + d2 * w2) * dt
            else:
                x3 = x2 + d2 * (t[i + 2] - s_next)
                d3 = _to_d(x3, t[i + 2], denoise(x3, t[i + 2]))
                w2, w3 = s_next / (3 * t[0]), t[i + 2] / (3 * t[0])
                x = x + ((1 - w2 - w3) * d + w2 * d2 + w3 * d3) * dt
        callback and callback(i, x, x0)
    return x


# ComfyUI's ddim is the Euler sampler (DDIM with eta 0 is Euler's method in sigma space); the
# _gpu variants differ from the others only in where their Brownian tree lives.
SAMPLERS = {
    "euler": euler,
    "euler_cfg_pp": multistep.euler_cfg_pp,
    "euler_ancestral": euler_ancestral,
    "euler_ancestral_cfg_pp": multistep.euler_ancestral_cfg_pp,
    "heun": heun,
    "heunpp2": heunpp2,
    "dpm_2": dpm_2,
    "dpm_2_ancestral": dpm_2_ancestral,
    "lms": lms,
    "dpm_fast": dpm_fast,
    "dpm_adaptive": dpm_adaptive,
    "dpmpp_2s_ancestral": dpmpp_2s_ancestral,
    "dpmpp_2s_ancestral_cfg_pp": multistep.dpmpp_2s_ancestral_cfg_pp,
    "dpmpp_sde": dpmpp_sde,
    "dpmpp_sde_gpu": dpmpp_sde,
    "dpmpp_2m": dpmpp_2m,
    "dpmpp_2m_cfg_pp": multistep.dpmpp_2m_cfg_pp,
    "dpmpp_2m_sde": dpmpp_2m_sde,
    "dpmpp_2m_sde_gpu": dpmpp_2m_sde,
    "dpmpp_2m_sde_heun": dpmpp_2m_sde_heun,
    "dpmpp_2m_sde_heun_gpu": dpmpp_2m_sde_heun,
    "dpmpp_3m_sde": dpmpp_3m_sde,
    "dpmpp_3m_sde_gpu": dpmpp_3m_sde,
    "ddpm": ddpm,
    "lcm": lcm,
    "ipndm": multistep.ipndm,
    "ipndm_v": multistep.ipndm_v,
    "deis": multistep.deis,
    "res_multistep": multistep.res_multistep_plain,
    "res_multistep_cfg_pp": multistep.res_multistep_cfg_pp,
    "res_multistep_ancestral": multistep.res_multistep_ancestral,
    "res_multistep_ancestral_cfg_pp": multistep.res_multistep_ancestral_cfg_pp,
    "gradient_estimation": multistep.gradient_estimation,
    "gradient_estimation_cfg_pp": multistep.gradient_estimation_cfg_pp,
    "er_sde": sde.er_sde,
    "seeds_2": sde.seeds_2,
    "seeds_3": sde.seeds_3,
    "sa_solver": sde.sa_solver,
    "sa_solver_pece": sde.sa_solver_pece,
    "ddim": euler,
    "uni_pc": uni_pc,
    "uni_pc_bh2": uni_pc_bh2,
}

# Samplers for which ComfyUI drops the second-to-last sigma (they step through a midpoint).
DISCARD_PENULTIMATE_SIGMA = {"dpm_2", "dpm_2_ancestral", "uni_pc", "uni_pc_bh2"}

# The samplers that step along the unguided prediction (``denoise.last_uncond``); ComfyUI
# evaluates the negative for them even at cfg 1.
CFG_PP_SAMPLERS = {name for name in SAMPLERS if name.endswith("_cfg_pp")}

# Which noise each sampler draws in ComfyUI: "brownian" (a Brownian tree kept on the CPU),
# "brownian_device" (the _gpu variants: the tree lives on the sample's device), "default"
# (independent draws), or None (deterministic).
_BROWNIAN = {"dpmpp_sde", "dpmpp_2m_sde", "dpmpp_2m_sde_heun", "dpmpp_3m_sde"}
_DETERMINISTIC = {"euler", "euler_cfg_pp", "heun", "heunpp2", "dpm_2", "lms", "dpmpp_2m",
                  "dpmpp_2m_cfg_pp", "ipndm", "ipndm_v", "deis", "gradient_estimation",
                  "gradient_estimation_cfg_pp", "ddim", "uni_pc", "uni_pc_bh2", "dpm_adaptive"}
NOISE_SOURCE: dict[str, str | None] = {
    name: ("brownian" if name in _BROWNIAN else "brownian_device" if name.removesuffix("_gpu") in _BROWNIAN
           else None if name in _DETERMINISTIC else "default")
    for name in SAMPLERS
}


def get_sampler(name: str):
    try:
        return SAMPLERS[name]
    except KeyError:
        raise ValueError(f"sampler {name!r} is not implemented; available: "
                         + ", ".join(sorted(SAMPLERS))) from None
