"""SIGMAS: the scheduler and sigma-tool nodes, and the published schedule tables."""

from __future__ import annotations

import math

import pytest
import torch

from opencomfy.diffusion import sigma_tables
from opencomfy.diffusion.model_sampling import DiscreteSchedule
from opencomfy.diffusion.schedulers import calculate_sigmas
from opencomfy.nodes import custom_sampling_sigmas as nodes

SCHEDULE = DiscreteSchedule()


class _Model:
    """Just what the scheduler nodes read from a MODEL."""

    schedule = SCHEDULE


def test_basic_scheduler_is_the_tail_of_a_longer_schedule():
    full = calculate_sigmas(SCHEDULE, "karras", 10)
    (out,) = nodes.BasicScheduler().get_sigmas(_Model(), "karras", 10, 1.0)
    assert torch.equal(out, full)
    (half,) = nodes.BasicScheduler().get_sigmas(_Model(), "normal", 5, 0.5)
    assert torch.equal(half, calculate_sigmas(SCHEDULE, "normal", 10)[-6:])
    (none,) = nodes.BasicScheduler().get_sigmas(_Model(), "normal", 5, 0.0)
    assert none.shape == (0,)


def test_parametric_schedules():
    (k,) = nodes.KarrasScheduler().get_sigmas(3, 10.0, 0.1, 7.0)
    lo, hi = 0.1 ** (1 / 7), 10.0 ** (1 / 7)
    assert torch.allclose(k, torch.tensor([hi ** 7, ((hi + lo) / 2) ** 7, lo ** 7, 0.0]), rtol=1e-5)
    (e,) = nodes.ExponentialScheduler().get_sigmas(3, 10.0, 0.1)
    assert torch.allclose(e, torch.tensor([10.0, 1.0, 0.1, 0.0]), rtol=1e-5)
    (p,) = nodes.PolyexponentialScheduler().get_sigmas(3, 10.0, 0.1, 1.0)
    assert torch.allclose(p, e, rtol=1e-5)      # rho 1 is the exponential schedule
    (p2,) = nodes.PolyexponentialScheduler().get_sigmas(3, 10.0, 0.1, 2.0)
    assert math.isclose(float(p2[1]), math.exp(0.25 * math.log(100) + math.log(0.1)), rel_tol=1e-5)
    (vp,) = nodes.VPScheduler().get_sigmas(2, 19.9, 0.1, 0.001)
    first = math.sqrt(math.expm1(19.9 / 2 + 0.1))
    assert torch.allclose(vp[[0, 2]], torch.tensor([first, 0.0]), rtol=1e-5)
    (lap,) = nodes.LaplaceScheduler().get_sigmas(5, 14.6, 0.03, 0.0, 0.5)
    assert len(lap) == 5 and float(lap[2]) == pytest.approx(1.0, abs=1e-4)   # exp(mu) mid-way
    assert float(lap[0]) == pytest.approx(14.6) and float(lap[-1]) == pytest.approx(0.03)
    with pytest.raises(ValueError, match="above 0"):
        nodes.ExponentialScheduler().get_sigmas(3, 10.0, 0.0)


def test_model_schedules():
    (turbo,) = nodes.SDTurboScheduler().get_sigmas(_Model(), 2, 1.0)
    assert torch.allclose(turbo, torch.cat([SCHEDULE.sigma(torch.tensor([999.0, 899.0])), torch.zeros(1)]))
    (late,) = nodes.SDTurboScheduler().get_sigmas(_Model(), 1, 0.5)
    assert torch.allclose(late[:1], SCHEDULE.sigma(torch.tensor([499.0])))
    (beta,) = nodes.BetaSamplingScheduler().get_sigmas(_Model(), 10, 0.6, 0.6)
    assert torch.equal(beta, calculate_sigmas(SCHEDULE, "beta", 10))
    (sigma,) = nodes.SamplingPercentToSigma().get_sigma(_Model(), 0.0, False)
    assert sigma > 1e8          # "before the first step": larger than any sigma
    (actual,) = nodes.SamplingPercentToSigma().get_sigma(_Model(), 0.0, True)
    assert actual == pytest.approx(SCHEDULE.sigma_max)
    (end,) = nodes.SamplingPercentToSigma().get_sigma(_Model(), 1.0, True)
    assert end == pytest.approx(SCHEDULE.sigma_min)


def test_sigma_tools():
    s = torch.tensor([4.0, 3.0, 2.0, 1.0, 0.0])
    high, low = nodes.SplitSigmas().get_sigmas(s, 2)
    assert high.tolist() == [4.0, 3.0, 2.0] and low.tolist() == [2.0, 1.0, 0.0]
    high, low = nodes.SplitSigmasDenoise().get_sigmas(s, 0.25)
    assert high.tolist() == [4.0, 3.0, 2.0, 1.0] and low.tolist() == [1.0, 0.0]
    (flipped,) = nodes.FlipSigmas().get_sigmas(s)
    assert flipped.tolist() == pytest.approx([0.0001, 1.0, 2.0, 3.0, 4.0])
    assert s[0] == 4.0           # the input is not changed
    (first,) = nodes.SetFirstSigma().set_first_sigma(s, 9.5)
    assert first.tolist() == [9.5, 3.0, 2.0, 1.0, 0.0] and s[0] == 4.0
    (extended,) = nodes.ExtendIntermediateSigmas().extend(s, 2, -1.0, 2.5, "linear")
    assert extended.tolist() == [4.0, 3.5, 3.0, 2.5, 2.0, 1.0, 0.0]
    (cosine,) = nodes.ExtendIntermediateSigmas().extend(torch.tensor([2.0, 0.0]), 2, -1.0, 0.0, "cosine")
    assert cosine.tolist() == pytest.approx([2.0, 2.0 - 2.0 * math.sin(math.pi / 4), 0.0])


def test_manual_sigmas_reads_every_number():
    (out,) = nodes.ManualSigmas().execute("1.0, 0.978453 0.5,.25; -1e-1 0")
    assert out.tolist() == pytest.approx([1.0, 0.978453, 0.5, 0.25, -0.1, 0.0])
    info = nodes.ManualSigmas.GET_NODE_INFO_V1()
    assert info["experimental"] is True and info["input"]["required"]["sigmas"][0] == "STRING"


def test_align_your_steps_uses_the_published_sd1_schedule():
    (sd1,) = nodes.AlignYourStepsScheduler().execute("SD1", 10, 1.0)
    published = [14.615, 6.475, 3.864, 2.695, 1.884, 1.394, 0.964, 0.652, 0.398, 0.152]
    assert sd1[:-1].tolist() == pytest.approx(published, abs=1e-3) and sd1[-1] == 0
    (svd,) = nodes.AlignYourStepsScheduler().execute("SVD", 10, 1.0)
    assert svd[0] == pytest.approx(700.0) and svd[5] == pytest.approx(1.789)
    # other step counts follow the curve log-linearly, from the same first sigma
    (twenty,) = nodes.AlignYourStepsScheduler().execute("SDXL", 20, 1.0)
    assert len(twenty) == 21 and twenty[0] == pytest.approx(14.6146412) and twenty[-1] == 0
    assert twenty[2] == pytest.approx(6.3184485287, rel=1e-5)
    assert twenty[1] == pytest.approx(math.sqrt(14.6146412293 * 6.3184485287), rel=1e-5)
    (tail,) = nodes.AlignYourStepsScheduler().execute("SD1", 10, 0.5)
    assert tail[:-1].tolist() == pytest.approx(published[5:], abs=1e-3)


def test_gits_uses_the_published_schedules():
    (ten,) = nodes.GITSScheduler().execute(1.2, 10, 1.0)
    published = [14.61464119, 5.85520077, 2.84484982, 1.67050016, 1.08895338, 0.74807048,
                 0.50118381, 0.32104823, 0.19894916, 0.09824532, 0.0]
    assert ten.tolist() == pytest.approx(published, rel=1e-6)
    (two,) = nodes.GITSScheduler().execute(0.8, 2, 1.0)
    assert two.tolist() == pytest.approx([14.61464119, 7.49001646, 0.0], rel=1e-6)
    # every table row runs from SD1's largest to smallest sigma, strictly down, steps + 1 long
    for coeff in sigma_tables.GITS_COEFFICIENTS:
        for steps in range(2, 21):
            levels = sigma_tables.gits_levels(coeff, steps)
            assert len(levels) == steps + 1
            assert all(a > b for a, b in zip(levels, levels[1:], strict=False))
    (long,) = nodes.GITSScheduler().execute(1.2, 40, 1.0)
    assert len(long) == 41 and long[0] == pytest.approx(14.61464119)
    with pytest.raises(ValueError, match="coefficients"):
        nodes.GITSScheduler().execute(2.0, 10, 1.0)


def test_optimal_steps_uses_the_published_schedules():
    (flux,) = nodes.OptimalStepsScheduler().execute("FLUX", 10, 1.0)
    assert flux[:-1].tolist() == pytest.approx(list(sigma_tables.OPTIMAL_STEPS_LEVELS["FLUX"][:-1]))
    assert flux[0] == pytest.approx(0.9968) and flux[-1] == 0
    (wan,) = nodes.OptimalStepsScheduler().execute("Wan", 20, 1.0)
    assert wan[-2] == pytest.approx(0.208)
    (empty,) = nodes.OptimalStepsScheduler().execute("Chroma", 20, 0.0)
    assert empty.shape == (0,)
    with pytest.raises(ValueError, match="model type"):
        nodes.OptimalStepsScheduler().execute("SD9", 20, 1.0)
