"""UniPC (Zhao et al., 2023): a multistep predictor-corrector sampler on x0 predictions.

Run as ComfyUI runs it: order ``min(3, steps - 1)``, lower orders for the first and last
steps; the corrector (UniC) reuses the model evaluation at each predicted point, so it costs
no extra model call; the last step has no corrector. ``bh1`` and ``bh2`` are the paper's two
choices of B(h). Written in sigma space (``lambda = -log sigma``). A final sigma of 0 is
replaced by 0.001 (the solver needs a finite lambda), so the result keeps that much noise, and
a single step only evaluates the model (ComfyUI's solver then makes no update at all).
"""

from __future__ import annotations

import math

import torch


def _coefficients(rks: list[float], h: float, order: int, variant: str):
    """(B(h), predictor weights, corrector weights) for the given step ratios ``rks``."""
    hh = -h                                    # data prediction
    h_phi_1 = math.expm1(hh)                   # e^{-h} - 1
    b_h = hh if variant == "bh1" else math.expm1(hh)
    ratios = torch.tensor([*rks, 1.0], dtype=torch.float64)
    rows, rhs = [], []
    h_phi_k = h_phi_1 / hh - 1
    factorial = 1
    for k in range(1, order + 1):
        rows.append(ratios ** (k - 1))
        rhs.append(h_phi_k * factorial / b_h)
        factorial *= k + 1
        h_phi_k = h_phi_k / hh - 1 / factorial
    r = torch.stack(rows)
    b = torch.tensor(rhs, dtype=torch.float64)
    if order == 2:
        predictor = torch.tensor([0.5], dtype=torch.float64)
    elif order > 2:
        predictor = torch.linalg.solve(r[:-1, :-1], b[:-1])
    else:
        predictor = None
    corrector = torch.tensor([0.5], dtype=torch.float64) if order == 1 else torch.linalg.solve(r, b)
    return h_phi_1, b_h, predictor, corrector


FINAL_SIGMA = 0.001


def uni_pc(denoise, x, sigmas, *, noise=None, callback=None, order: int | None = None, variant: str = "bh1"):
    steps = len(sigmas) - 1
    sigmas_f = [float(s) for s in sigmas]
    if steps < 1:
        return x
    if sigmas_f[-1] == 0:
        sigmas_f[-1] = FINAL_SIGMA
    order = min(3, steps - 1) if order is None else order
    if order < 1:
        # ComfyUI's solver needs steps > order >= 1: one step leaves the sample where it was
        # (in its variance-preserving form, rescaled at the end to the final sigma).
        x0 = denoise(x, sigmas_f[0])
        callback and callback(0, x, x0)
        return x * ((1 + sigmas_f[-1] ** 2) / (1 + sigmas_f[0] ** 2)) ** 0.5
    history_x0 = []       # model outputs at the last points, newest last
    history_sigma = []
    x0 = denoise(x, sigmas_f[0])
    history_x0.append(x0)
    history_sigma.append(sigmas_f[0])
    for i in range(steps):
        s_prev, s_next = sigmas_f[i], sigmas_f[i + 1]
        last = i == steps - 1
        step_order = min(order, len(history_x0), steps - i)
        if s_next == s_prev:                   # a zero-length step leaves x where it is
            callback and callback(i, x, history_x0[-1])
            continue
        h = math.log(s_prev) - math.log(s_next)
        m0 = history_x0[-1]
        rks, d1s = [], []
        for k in range(1, step_order):
            # (lambda_k - lambda_prev) / h with lambda = -log sigma: negative for older points
            r = (math.log(s_prev) - math.log(history_sigma[-(k + 1)])) / h
            rks.append(r)
            d1s.append((history_x0[-(k + 1)] - m0) / r)
        h_phi_1, b_h, rho_p, rho_c = _coefficients(rks, h, step_order, variant)
        base = (s_next / s_prev) * x - h_phi_1 * m0
        predicted = base
        if rho_p is not None:   # None exactly for a first-order step, which has no d1s
            predicted = base - b_h * sum(float(w) * d for w, d in zip(rho_p, d1s, strict=False))
        x_next = predicted
        model_next = None
        if not last:
            model_next = denoise(predicted, s_next)
            correction = sum(float(w) * d for w, d in zip(rho_c[:-1], d1s, strict=False)) if d1s else 0
            x_next = base - b_h * (correction + float(rho_c[-1]) * (model_next - m0))
        x = x_next
        callback and callback(i, x, model_next if model_next is not None else m0)
        if model_next is not None:
            history_x0.append(model_next)
            history_sigma.append(s_next)
            del history_x0[:-order], history_sigma[:-order]
    return x


def uni_pc_bh2(denoise, x, sigmas, *, noise=None, callback=None):
    return uni_pc(denoise, x, sigmas, noise=noise, callback=callback, variant="bh2")
