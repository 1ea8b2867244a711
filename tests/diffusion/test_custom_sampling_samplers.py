"""The option-carrying SAMPLER nodes (ER-SDE, SEEDS-2, SA-Solver, adaptive DPM-Solver) run as a
SAMPLER runs them (``KSAMPLER.sample``) on the exactly solvable Gaussian model of
test_samplers_all: their ODE settings land on the exact probability-flow solution (or on Euler's
step, for ER-SDE's first stage), their SDE settings on samples of the data distribution, and
their defaults on the KSampler sampler of the same name."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from opencomfy.diffusion.schedulers import calculate_sigmas
from opencomfy.nodes import custom_sampling_samplers as s
from tests.diffusion.test_samplers_all import MU_COND, SCHEDULE, SD, GaussianDenoiser, exact_flow

MODEL = SimpleNamespace(schedule=SCHEDULE)     # what SamplerSASolver reads of its MODEL


class Wrapped(GaussianDenoiser):
    """The Gaussian denoiser as a guider looks to a SAMPLER (its model's schedule beside it)."""

    inner_model = MODEL


def _run(sampler, steps: int, *, samples: int = 512, seed: int = 0, noise_seed: int = 1, dtype=torch.float64):
    """(start, result, sigmas, model) of ``sampler`` from pure noise over a karras schedule."""
    sigmas = calculate_sigmas(SCHEDULE, "karras", steps).to(dtype)
    noise = torch.randn(1, samples, generator=torch.Generator().manual_seed(seed), dtype=dtype)
    model = Wrapped(cfg=1.0, same=True)
    latent = torch.full_like(noise, MU_COND)
    start = SCHEDULE.noise_scaling(float(sigmas[0]), noise, latent, max_denoise=True)
    out = sampler.sample(model, sigmas, {"seed": noise_seed}, None, noise, latent_image=latent)
    return start, out, sigmas, model


def _flow_error(sampler, steps: int, end_sigma=None) -> float:
    start, out, sigmas, model = _run(sampler, steps)
    end = 0.0 if end_sigma is None else end_sigma(sigmas)
    return (out - exact_flow(start, float(sigmas[0]), end, model.mu)).abs().max().item()


def _reaches_the_data(sampler) -> None:
    """80 steps from noise end on N(MU, SD^2): the right mean and the right spread."""
    _, out, _, _ = _run(sampler, 80, samples=20000, dtype=torch.float32)
    assert abs(out.mean().item() - MU_COND) < 0.02, out.mean().item()
    assert abs(out.std().item() - SD) < 0.03, out.std().item()


def _select(name: str):
    return s.KSamplerSelect().get_sampler(name)[0]


def _same(a, b, steps: int = 6) -> bool:
    return torch.equal(_run(a, steps)[1], _run(b, steps)[1])


# --- ER-SDE -----------------------------------------------------------------------------------------

def test_er_sde_ode_first_stage_is_the_euler_step():
    """With the identity noise scale the ER step is x_t = (s_t / s) x + (1 - s_t / s) D: Euler's."""
    (ode,) = s.SamplerER_SDE().get_sampler("ODE", 1, 1.0, 1.0)     # ODE ignores eta and s_noise
    _, ours, _, _ = _run(ode, 8)
    _, euler, _, _ = _run(_select("euler"), 8)
    torch.testing.assert_close(ours, euler, atol=1e-6, rtol=1e-6)


def test_er_sde_ode_is_deterministic_and_converges_to_the_exact_flow():
    (ode,) = s.SamplerER_SDE().get_sampler("ODE", 3, 1.0, 1.0)
    a = _run(ode, 12, noise_seed=1)[1]
    assert torch.equal(a, _run(ode, 12, noise_seed=2)[1])          # no noise drawn in
    errors = [_flow_error(ode, steps) for steps in (12, 48)]
    assert errors[1] < 0.01 and errors[1] < errors[0] / 2.5, errors
    # The reverse-time SDE with eta 0 is the same ODE.
    (sde_0,) = s.SamplerER_SDE().get_sampler("Reverse-time SDE", 3, 0.0, 1.0)
    assert _same(sde_0, ode)


def test_er_sde_stochastic_variants():
    (default,) = s.SamplerER_SDE().get_sampler("ER-SDE", 3, 1.0, 1.0)
    assert _same(default, _select("er_sde"))                       # the KSampler er_sde
    (er_eta,) = s.SamplerER_SDE().get_sampler("ER-SDE", 3, 5.0, 1.0)
    assert _same(er_eta, default)                                  # ER-SDE ignores eta
    _reaches_the_data(default)
    (reverse,) = s.SamplerER_SDE().get_sampler("Reverse-time SDE", 3, 1.0, 1.0)
    assert not _same(reverse, default)
    _reaches_the_data(reverse)
    with pytest.raises(ValueError, match="unknown ER-SDE solver type"):
        s.SamplerER_SDE().get_sampler("Euler", 3, 1.0, 1.0)


# --- SEEDS-2 ----------------------------------------------------------------------------------------

def test_seeds_2_defaults_are_the_ksampler_seeds_2():
    (default,) = s.SamplerSEEDS2().execute("phi_1", 1.0, 1.0, 0.5)
    assert _same(default, _select("seeds_2"))
    _reaches_the_data(default)


def test_seeds_2_phi_2_without_noise_is_a_second_order_ode_solver():
    """phi_2, r 1, eta 0 is the exponential Heun method (ComfyUI's exp_heun_2_x0): deterministic,
    and halving the step size cuts the error about four times."""
    (heun,) = s.SamplerSEEDS2().execute("phi_2", 0.0, 1.0, 1.0)
    assert _same(heun, heun) and torch.equal(_run(heun, 6, noise_seed=1)[1], _run(heun, 6, noise_seed=5)[1])
    errors = [_flow_error(heun, steps) for steps in (10, 20)]
    # (Euler's error only halves here: 0.27 -> 0.135)
    assert errors[1] < 0.03 and errors[1] < errors[0] / 3, errors
    (phi_1,) = s.SamplerSEEDS2().execute("phi_1", 0.0, 1.0, 1.0)
    assert not _same(heun, phi_1)
    # With noise (exp_heun_2_x0_sde) it samples the data distribution.
    (heun_sde,) = s.SamplerSEEDS2().execute("phi_2", 1.0, 1.0, 1.0)
    _reaches_the_data(heun_sde)


# --- SA-Solver --------------------------------------------------------------------------------------

def test_sa_solver_defaults_are_the_ksampler_sa_solver():
    (default,) = s.SamplerSASolver().get_sampler(MODEL, 1.0, 0.2, 0.8, 1.0, 3, 4, False, False)
    assert _same(default, _select("sa_solver"))
    (pece,) = s.SamplerSASolver().get_sampler(MODEL, 1.0, 0.2, 0.8, 1.0, 3, 4, True, False)
    assert _same(pece, _select("sa_solver_pece"))
    _reaches_the_data(default)


def test_sa_solver_without_noise_converges_to_the_exact_flow():
    (ode,) = s.SamplerSASolver().get_sampler(MODEL, 0.0, 0.2, 0.8, 1.0, 3, 4, False, False)
    errors = [_flow_error(ode, steps) for steps in (10, 20)]
    assert errors[1] < 5e-3 and errors[1] < errors[0] / 3, errors
    # An interval no step reaches is the same ODE solver, whatever eta says.
    (after,) = s.SamplerSASolver().get_sampler(MODEL, 1.0, 1.0, 1.0, 1.0, 3, 4, False, False)
    assert _same(after, ode)


def test_sa_solver_tau_interval_follows_the_percents():
    high, low = SCHEDULE.percent_to_sigma(0.2), SCHEDULE.percent_to_sigma(0.8)
    tau = s.tau_interval(high, low, 0.7)
    assert [tau(high * 1.01), tau(high), tau((high + low) / 2), tau(low), tau(low * 0.99)] == [0, 0.7, 0.7, 0.7, 0]


def test_sa_solver_simple_order_2_is_refused_with_a_clear_error():
    with pytest.raises(ValueError, match="simple_order_2"):
        s.SamplerSASolver().get_sampler(MODEL, 1.0, 0.2, 0.8, 1.0, 3, 4, False, True)


# --- adaptive DPM-Solver ----------------------------------------------------------------------------

def _adaptive(**changes):
    options = {"order": 3, "rtol": 0.05, "atol": 0.0078, "h_init": 0.05, "pcoeff": 0.0, "icoeff": 1.0,
               "dcoeff": 0.0, "accept_safety": 0.81, "eta": 0.0, "s_noise": 1.0, **changes}
    return s.SamplerDPMAdaptative().get_sampler(**options)[0]


def test_dpm_adaptive_reaches_the_exact_flow_and_rtol_sets_its_effort():
    assert _same(_adaptive(), _select("dpm_adaptive"), steps=10)

    # It integrates from the first sigma to the last non-zero one, choosing its own steps.
    def error(sampler):
        return _flow_error(sampler, 10, end_sigma=lambda sigmas: float(sigmas[-2]))

    calls, errors = {}, {}
    for rtol in (0.2, 0.001):
        sampler = _adaptive(rtol=rtol, atol=0.0001)
        calls[rtol], errors[rtol] = _run(sampler, 10)[3].calls, error(sampler)
    assert calls[0.001] > calls[0.2], calls                          # a tighter tolerance, more steps ...
    assert errors[0.001] < 5e-3 and errors[0.001] < errors[0.2] / 4, errors   # ... and closer
    assert error(_adaptive(order=2, rtol=0.001, atol=0.0001)) < 0.01


def test_dpm_adaptive_options_it_lacks_are_refused_with_a_clear_error():
    for option in ({"eta": 0.5}, {"pcoeff": 0.3}, {"dcoeff": 0.1}):
        with pytest.raises(ValueError, match=f"dpm_adaptive.*{next(iter(option))}"):
            _adaptive(**option)
    assert math.isfinite(_flow_error(_adaptive(s_noise=0.0), 4, end_sigma=lambda sg: float(sg[-2])))
