"""Every KSampler sampler against an exactly solvable model, and ComfyUI's noise conventions.

The data model: every latent element is independent N(MU, SD^2), so the exact denoiser is
linear, D(x, sigma) = (SD^2 x + sigma^2 MU) / (SD^2 + sigma^2), and the probability-flow ODE
has the closed form x(sigma) = MU + (x(sigma0) - MU) sqrt((SD^2 + sigma^2) / (SD^2 + sigma0^2)).
The deterministic samplers must converge to it; the stochastic ones must turn samples of the
noised distribution into samples of N(MU, SD^2). Guidance mixes two such models (the guided
prediction of linear denoisers is again one, with the guided mean).
"""

from __future__ import annotations

import math

import pytest
import torch

from opencomfy.compat.comfy.samplers import SAMPLER_NAMES
from opencomfy.diffusion.model_sampling import DiscreteSchedule
from opencomfy.diffusion.noise_samplers import BrownianTreeNoiseSampler, default_noise_sampler
from opencomfy.diffusion.samplers import CFG_PP_SAMPLERS, NOISE_SOURCE, SAMPLERS, get_sampler
from opencomfy.diffusion.schedulers import calculate_sigmas

SD, MU_COND, MU_UNCOND = 0.5, 0.3, -0.2
SCHEDULE = DiscreteSchedule()
DETERMINISTIC = sorted(n for n, src in NOISE_SOURCE.items() if src is None) + ["dpm_fast"]
# (lcm is left out of the distribution test: it renoises the posterior mean, which is right
# only for consistency-distilled models; its step is checked on its own below.)
STOCHASTIC = sorted(n for n, src in NOISE_SOURCE.items() if src is not None and n not in ("dpm_fast", "lcm"))


class GaussianDenoiser:
    """The exact denoiser of N(mu, SD^2) data, guided between two means like CFG."""

    def __init__(self, cfg: float = 1.0, *, same: bool = False):
        self.cfg = cfg
        self.mu_uncond = MU_COND if same else MU_UNCOND
        self.last_uncond = None
        self.calls = 0

    @staticmethod
    def exact(x, sigma, mu):
        return (SD ** 2 * x + sigma ** 2 * mu) / (SD ** 2 + sigma ** 2)

    def __call__(self, x, sigma):
        self.calls += 1
        cond, uncond = self.exact(x, sigma, MU_COND), self.exact(x, sigma, self.mu_uncond)
        self.last_uncond = uncond
        return uncond + (cond - uncond) * self.cfg

    @property
    def mu(self):
        return self.mu_uncond + (MU_COND - self.mu_uncond) * self.cfg


def exact_flow(x, sigma0, sigma, mu):
    return mu + (x - mu) * math.sqrt((SD ** 2 + sigma ** 2) / (SD ** 2 + sigma0 ** 2))


def _final_sigma(name: str, sigmas) -> float:
    if name in ("uni_pc", "uni_pc_bh2"):
        return 0.001
    if name in ("dpm_fast", "dpm_adaptive"):
        return float(sigmas[-2])
    return 0.0


def test_every_ksampler_name_is_implemented():
    assert set(SAMPLER_NAMES) == set(SAMPLERS)


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_deterministic_samplers_converge_to_the_exact_flow(name):
    """With enough steps every ODE sampler lands where the exact ODE solution does, and more
    steps bring it closer (so the update is consistent, not merely stable)."""
    torch.manual_seed(0)
    errors = []
    for steps in (12, 48):
        sigmas = calculate_sigmas(SCHEDULE, "karras", steps)
        x = torch.randn(2000, dtype=torch.float64) * math.sqrt(SD ** 2 + float(sigmas[0]) ** 2) + MU_COND
        # (CFG++ follows the unguided model: with it equal to the guided one, the flow is exact)
        model = GaussianDenoiser(cfg=1.0, same=True)
        out = get_sampler(name)(model, x.clone(), sigmas.double(), noise=default_noise_sampler(x, 0))
        want = exact_flow(x, float(sigmas[0]), _final_sigma(name, sigmas), model.mu)
        errors.append((out - want).abs().max().item())
    # (Euler-like first-order samplers need the most steps: 4x the steps, 1/4 the error.)
    assert errors[1] < 0.08, errors
    if name == "dpm_adaptive":
        return          # it picks its own steps (error-controlled): only the end points count
    # ipndm_v's variable-step weights (as ComfyUI has them) are not the exact Adams-Bashforth
    # ones, so it converges more slowly than its order would say.
    assert errors[1] < errors[0] / (2 if name == "ipndm_v" else 2.5), errors


@pytest.mark.parametrize("name", STOCHASTIC)
def test_stochastic_samplers_reach_the_data_distribution(name):
    """From samples of the noised distribution, each SDE/ancestral sampler ends on samples of
    N(mu, SD^2): right mean and right spread (too little or too much noise shows here)."""
    torch.manual_seed(1)
    sigmas = calculate_sigmas(SCHEDULE, "karras", 80)
    x = torch.randn(1, 20000) * math.sqrt(SD ** 2 + float(sigmas[0]) ** 2) + MU_COND
    model = GaussianDenoiser(cfg=1.0, same=True)
    noise = (BrownianTreeNoiseSampler(x, float(sigmas[-2]), float(sigmas[0]), seed=3)
             if NOISE_SOURCE[name].startswith("brownian") else default_noise_sampler(x, 3))
    out = get_sampler(name)(model, x, sigmas, noise=noise)
    assert abs(out.mean().item() - MU_COND) < 0.02
    assert abs(out.std().item() - SD) < 0.03, out.std().item()


@pytest.mark.parametrize("name", sorted(CFG_PP_SAMPLERS))
def test_cfg_pp_steps_along_the_unguided_prediction(name):
    """With the unguided model equal to the guided one, a CFG++ sampler is its plain sibling;
    with a different unguided model it is not, even at cfg 1 (it steps along that model)."""
    plain = {"euler_cfg_pp": "euler", "euler_ancestral_cfg_pp": "euler_ancestral",
             "dpmpp_2s_ancestral_cfg_pp": "dpmpp_2s_ancestral", "dpmpp_2m_cfg_pp": "dpmpp_2m",
             "res_multistep_cfg_pp": "res_multistep",
             "res_multistep_ancestral_cfg_pp": "res_multistep_ancestral",
             "gradient_estimation_cfg_pp": "gradient_estimation"}[name]
    sigmas = calculate_sigmas(SCHEDULE, "normal", 6)
    x = torch.randn(1, 4, 4, 4, generator=torch.Generator().manual_seed(2)) * float(sigmas[0])

    def run(sampler, same):
        model = GaussianDenoiser(1.0, same=same)
        return get_sampler(sampler)(model, x.clone(), sigmas, noise=default_noise_sampler(x, 5))

    assert torch.allclose(run(name, True), run(plain, True), atol=1e-5)
    assert not torch.allclose(run(name, False), run(plain, False), atol=1e-3)


# -- steps re-derived here in their simplest form -------------------------------------------------

def _two_steps(name, sigmas):
    x = torch.randn(64, generator=torch.Generator().manual_seed(4), dtype=torch.float64) * float(sigmas[0])
    return x, get_sampler(name)(GaussianDenoiser(), x.clone(), sigmas, noise=default_noise_sampler(x, 9))


def D(x, s):
    return GaussianDenoiser.exact(x, s, MU_COND)


def test_ipndm_is_adams_bashforth_in_sigma():
    sigmas = torch.tensor([10.0, 5.0, 2.0, 0.0], dtype=torch.float64)
    x, out = _two_steps("ipndm", sigmas)
    d0 = (x - D(x, 10.0)) / 10.0
    x1 = x + (5.0 - 10.0) * d0
    d1 = (x1 - D(x1, 5.0)) / 5.0
    x2 = x1 + (2.0 - 5.0) * (1.5 * d1 - 0.5 * d0)
    assert torch.allclose(out, D(x2, 2.0))          # the last step lands on the prediction


def test_lms_uses_the_integrated_lagrange_basis():
    from scipy import integrate

    sigmas = torch.tensor([10.0, 5.0, 2.0, 0.0], dtype=torch.float64)
    x, out = _two_steps("lms", sigmas)
    t = [10.0, 5.0, 2.0]
    d0 = (x - D(x, 10.0)) / 10.0
    x1 = x + (5.0 - 10.0) * d0
    d1 = (x1 - D(x1, 5.0)) / 5.0
    c_new = integrate.quad(lambda s: (s - t[0]) / (t[1] - t[0]), t[1], t[2])[0]
    c_old = integrate.quad(lambda s: (s - t[1]) / (t[0] - t[1]), t[1], t[2])[0]
    x2 = x1 + c_new * d1 + c_old * d0
    assert torch.allclose(out, D(x2, 2.0))


def test_dpmpp_2m_cfg_pp_and_res_multistep_first_step_is_euler():
    sigmas = torch.tensor([10.0, 4.0], dtype=torch.float64)
    x, euler = _two_steps("euler", sigmas)
    for name in ("res_multistep", "dpmpp_2m", "deis", "ipndm_v", "gradient_estimation"):
        assert torch.allclose(_two_steps(name, sigmas)[1], euler), name


def test_ddpm_is_the_posterior_mean_plus_its_noise():
    sigmas = torch.tensor([3.0, 1.0], dtype=torch.float64)
    x = torch.randn(64, generator=torch.Generator().manual_seed(4), dtype=torch.float64) * 3.0
    draws = default_noise_sampler(x, 9)
    out = get_sampler("ddpm")(GaussianDenoiser(), x.clone(), sigmas, noise=default_noise_sampler(x, 9))
    a, a_next = 1 / (1 + 9.0), 1 / (1 + 1.0)            # alphas_cumprod at sigma 3 and 1
    x_vp = x * math.sqrt(a)
    eps = (x - D(x, 3.0)) / 3.0
    x0 = (x_vp - math.sqrt(1 - a) * eps) / math.sqrt(a)
    beta = 1 - a / a_next
    mean = (math.sqrt(a_next) * beta / (1 - a)) * x0 + (math.sqrt(1 - beta) * (1 - a_next) / (1 - a)) * x_vp
    want = (mean + math.sqrt(beta * (1 - a_next) / (1 - a)) * draws(3.0, 1.0)) / math.sqrt(a_next)
    assert torch.allclose(out, want)


def test_lcm_jumps_to_the_prediction_and_renoises():
    sigmas = torch.tensor([3.0, 1.0], dtype=torch.float64)
    x = torch.ones(8, dtype=torch.float64)
    out = get_sampler("lcm")(GaussianDenoiser(), x.clone(), sigmas, noise=default_noise_sampler(x, 9))
    assert torch.allclose(out, D(x, 3.0) + default_noise_sampler(x, 9)(3.0, 1.0) * 1.0)


def test_uni_pc_steps_to_sigma_0_001_like_comfyui():
    """Two steps: order min(3, steps - 1) = 1; the first step is predicted then corrected (UniC,
    bh1) with the model evaluated at the predicted point; the last goes to sigma 0.001 (ComfyUI's
    solver cannot reach 0) without a corrector; one step makes no update at all."""
    sigmas = torch.tensor([8.0, 2.0, 0.0], dtype=torch.float64)
    x = torch.randn(64, generator=torch.Generator().manual_seed(4), dtype=torch.float64) * 8.0
    out = get_sampler("uni_pc")(GaussianDenoiser(), x.clone(), sigmas)
    m0 = D(x, 8.0)
    h = math.log(8.0 / 2.0)
    predicted = (2.0 / 8.0) * x - math.expm1(-h) * m0
    m1 = D(predicted, 2.0)
    x1 = predicted + 0.5 * h * (m1 - m0)
    h2 = math.log(2.0 / 0.001)
    assert torch.allclose(out, (0.001 / 2.0) * x1 - math.expm1(-h2) * m1)
    one = get_sampler("uni_pc")(GaussianDenoiser(), x.clone(), sigmas[[0, -1]])
    assert torch.allclose(one, x * math.sqrt((1 + 0.001 ** 2) / (1 + 64.0)))


def test_dpm_fast_spends_exactly_one_evaluation_per_step():
    for steps in (1, 2, 3, 4, 7, 9):
        sigmas = calculate_sigmas(SCHEDULE, "karras", steps)
        model = GaussianDenoiser()
        get_sampler("dpm_fast")(model, torch.zeros(4, dtype=torch.float64), sigmas.double())
        assert model.calls == steps


# -- ComfyUI's noise conventions -------------------------------------------------------------------

def test_default_noise_on_the_cpu_is_seeded_with_seed_plus_one():
    x = torch.zeros(2, 4, 3, 3)
    draws = default_noise_sampler(x, 41)
    first = draws(1.0, 0.5)
    assert torch.equal(first, torch.randn(x.shape, generator=torch.Generator().manual_seed(42)))
    assert not torch.equal(draws(1.0, 0.5), first)     # then independent draws


def test_brownian_tree_is_reproducible_and_additive():
    x = torch.zeros(1, 4, 8, 8)
    a = BrownianTreeNoiseSampler(x, 0.03, 14.6, seed=7, cpu=True)
    b = BrownianTreeNoiseSampler(x, 0.03, 14.6, seed=7, cpu=True)
    assert torch.equal(a(14.6, 3.0), b(14.6, 3.0))
    assert not torch.equal(a(14.6, 3.0), BrownianTreeNoiseSampler(x, 0.03, 14.6, seed=8)(14.6, 3.0))
    # increments over split intervals add up to the increment over the whole
    whole = a.increment(14.6, 0.5)
    assert torch.allclose(a.increment(14.6, 3.0) + a.increment(3.0, 0.5), whole, atol=1e-5)
    # normalised increments are standard normal; over disjoint intervals independent
    n1, n2 = a(14.6, 3.0).flatten(), a(3.0, 0.5).flatten()
    assert 0.8 < n1.std().item() < 1.2 and abs(torch.corrcoef(torch.stack([n1, n2]))[0, 1].item()) < 0.3
    # a list of seeds: one tree per batch item
    batched = BrownianTreeNoiseSampler(torch.zeros(2, 4, 8, 8), 0.03, 14.6, seed=[7, 9])
    assert torch.equal(batched(14.6, 3.0)[0], a(14.6, 3.0)[0])


@pytest.mark.parametrize("name", ["dpmpp_sde", "dpmpp_2m_sde", "dpmpp_2m_sde_heun", "dpmpp_3m_sde"])
def test_sde_samplers_use_the_brownian_tree(name):
    """Same seed, same result; and the result is stable under refining the steps much more than
    with independent draws (the tree's paths, not fresh noise, drive the SDE)."""
    from opencomfy.diffusion.sampling import noise_sampler_for

    x = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0)) * 14.6
    sigmas = calculate_sigmas(SCHEDULE, "karras", 10)

    def run(seed):
        return get_sampler(name)(GaussianDenoiser(), x.clone(), sigmas, noise=noise_sampler_for(name, x, sigmas, seed))

    assert NOISE_SOURCE[name] == "brownian" and NOISE_SOURCE[name + "_gpu"] == "brownian_device"
    assert torch.equal(run(5), run(5))
    assert not torch.allclose(run(5), run(6))
