"""KSampler / KSamplerAdvanced semantics: schedulers, seeds, denoise, step ranges, noise masks."""

from __future__ import annotations

import pytest
import torch

from opencomfy.compat.comfy.samplers import SCHEDULER_NAMES
from opencomfy.diffusion.model_sampling import DiscreteSchedule
from opencomfy.diffusion.samplers import SAMPLERS
from opencomfy.diffusion.sampling import prepare_noise, sigmas_for
from opencomfy.diffusion.schedulers import calculate_sigmas
from opencomfy.nodes.diffusion_conditioning import CLIPTextEncode
from opencomfy.nodes.diffusion_sampling import KSampler, KSamplerAdvanced, common_ksampler

SCHEDULE = DiscreteSchedule()


@pytest.fixture(scope="module")
def conds(tiny_models):
    _, clip, _ = tiny_models
    return CLIPTextEncode().encode(clip, "a cat")[0], CLIPTextEncode().encode(clip, "dog")[0]


def _latent(batch=1, h=4, w=4):
    return {"samples": torch.zeros(batch, 4, h, w)}


def _run(tiny_models, conds, **kw):
    model = tiny_models[0]
    args = dict(seed=3, steps=4, cfg=5.0, sampler_name="euler", scheduler="normal")
    args.update(kw)
    latent = args.pop("latent", _latent())
    return common_ksampler(model, args.pop("seed"), args.pop("steps"), args.pop("cfg"),
                           args.pop("sampler_name"), args.pop("scheduler"), conds[0], conds[1],
                           latent, **args)["samples"]


def test_schedule_matches_sd1_training_sigmas():
    assert SCHEDULE.sigma_min == pytest.approx(0.0292, abs=1e-4)
    assert SCHEDULE.sigma_max == pytest.approx(14.6146, abs=1e-3)
    t = torch.tensor([0.0, 10.0, 999.0])
    assert torch.allclose(SCHEDULE.timestep(SCHEDULE.sigma(t)), t, atol=1e-3)
    # the UNet gets the nearest training timestep, as in ComfyUI (not an interpolated one)
    assert SCHEDULE.timestep(SCHEDULE.sigma(torch.tensor([10.4]))).item() == 10.0
    assert SCHEDULE.timestep(SCHEDULE.sigma(torch.tensor([10.6]))).item() == 11.0


@pytest.mark.parametrize("name", SCHEDULER_NAMES)
def test_every_scheduler_goes_down_to_zero(name):
    sigmas = calculate_sigmas(SCHEDULE, name, 10)
    assert sigmas[-1] == 0
    assert sigmas[0] <= SCHEDULE.sigma_max + 1e-3
    assert torch.all(sigmas[:-1] > sigmas[1:])
    assert 9 <= len(sigmas) <= 11


def test_karras_and_normal_values():
    k = calculate_sigmas(SCHEDULE, "karras", 3)
    lo, hi = SCHEDULE.sigma_min ** (1 / 7), SCHEDULE.sigma_max ** (1 / 7)
    assert torch.allclose(k[:3], torch.tensor([hi, (hi + lo) / 2, lo]) ** 7, rtol=1e-5)
    n = calculate_sigmas(SCHEDULE, "normal", 3)
    assert torch.allclose(n[:3], SCHEDULE.sigma(torch.tensor([999.0, 499.5, 0.0])), rtol=1e-5)
    assert torch.allclose(calculate_sigmas(SCHEDULE, "ddim_uniform", 4)[:4],
                          SCHEDULE.sigmas[[751, 501, 251, 1]], rtol=1e-6)


def test_denoise_keeps_the_tail_of_a_longer_schedule(tiny_models):
    model = tiny_models[0]
    full = sigmas_for(model, "normal", "euler", 10)
    half = sigmas_for(model, "normal", "euler", 5, denoise=0.5)
    assert torch.equal(half, full[-6:])
    assert len(sigmas_for(model, "normal", "euler", 5, denoise=0.0)) == 0
    # dpm_2 drops the second-to-last sigma, as ComfyUI does
    d = sigmas_for(model, "normal", "dpm_2", 4)
    assert len(d) == 5 and torch.equal(d[-1:], torch.zeros(1))


def test_seed_reproducible_and_batch_index_independent():
    latent = torch.zeros(3, 4, 2, 2)
    a = prepare_noise(latent, 11)
    assert torch.equal(a, prepare_noise(latent, 11))
    assert not torch.equal(a, prepare_noise(latent, 12))
    # sample i of a batch gets the noise of batch_index i whatever the batch
    picked = prepare_noise(torch.zeros(1, 4, 2, 2), 11, batch_index=[2])
    assert torch.equal(picked[0], prepare_noise(latent, 11, batch_index=[0, 1, 2])[2])


@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
def test_every_sampler_runs_and_is_reproducible(tiny_models, conds, sampler):
    a = _run(tiny_models, conds, sampler_name=sampler, steps=3)
    assert a.shape == (1, 4, 4, 4) and torch.isfinite(a).all()
    assert torch.equal(a, _run(tiny_models, conds, sampler_name=sampler, steps=3))


def test_unimplemented_sampler_is_a_clear_error(tiny_models, conds):
    with pytest.raises(ValueError, match="not implemented"):
        _run(tiny_models, conds, sampler_name="no_such_sampler")


def test_denoise_zero_returns_the_input(tiny_models, conds):
    latent = {"samples": torch.randn(1, 4, 4, 4)}
    out = _run(tiny_models, conds, latent=latent, denoise=0.0)
    assert torch.equal(out, latent["samples"])


def test_cfg_one_ignores_the_negative(tiny_models, conds):
    a = _run(tiny_models, conds, cfg=1.0)
    b = _run(tiny_models, (conds[0], CLIPTextEncode().encode(tiny_models[1], "other")[0]), cfg=1.0)
    assert torch.equal(a, b)
    assert not torch.allclose(a, _run(tiny_models, conds, cfg=5.0))


def test_advanced_split_in_two_equals_one_run(tiny_models, conds):
    model = tiny_models[0]
    common = dict(noise_seed=9, steps=6, cfg=5.0, sampler_name="euler", scheduler="karras",
                  positive=conds[0], negative=conds[1])
    full = KSampler().sample(model, 9, 6, 5.0, "euler", "karras", conds[0], conds[1], _latent())[0]
    first = KSamplerAdvanced().sample(model, "enable", latent_image=_latent(), start_at_step=0,
                                      end_at_step=3, return_with_leftover_noise="enable", **common)[0]
    second = KSamplerAdvanced().sample(model, "disable", latent_image=first, start_at_step=3,
                                       end_at_step=10000, return_with_leftover_noise="disable", **common)[0]
    assert torch.allclose(second["samples"], full["samples"], atol=1e-5)
    # without leftover noise the first half ends at sigma 0 instead: a different latent
    clean = KSamplerAdvanced().sample(model, "enable", latent_image=_latent(), start_at_step=0,
                                      end_at_step=3, return_with_leftover_noise="disable", **common)[0]
    assert not torch.allclose(clean["samples"], first["samples"], atol=1e-2)


def test_start_step_past_the_end_returns_the_latent(tiny_models, conds):
    latent = {"samples": torch.randn(1, 4, 4, 4)}
    out = KSamplerAdvanced().sample(tiny_models[0], "enable", 1, 4, 5.0, "euler", "normal", conds[0],
                                    conds[1], latent, start_at_step=10, end_at_step=10000,
                                    return_with_leftover_noise="disable")[0]
    assert torch.equal(out["samples"], latent["samples"])


def test_noise_mask_changes_only_the_masked_region(tiny_models, conds):
    source = torch.randn(1, 4, 8, 8)
    mask = torch.zeros(1, 8, 8)
    mask[:, 2:6, 2:6] = 1.0
    latent = {"samples": source, "noise_mask": mask}
    out = _run(tiny_models, conds, latent=latent, denoise=0.8)
    keep = (mask == 0).expand(1, 4, 8, 8)
    assert torch.allclose(out[keep], source[keep], atol=1e-5)
    assert (out - source)[~keep].abs().mean() > 0.05


def test_noise_mask_travels_on_in_the_output(tiny_models, conds):
    latent = {"samples": torch.zeros(1, 4, 4, 4), "noise_mask": torch.ones(1, 4, 4), "batch_index": [0]}
    out = common_ksampler(tiny_models[0], 1, 2, 5.0, "euler", "normal", conds[0], conds[1], latent)
    assert out["noise_mask"] is latent["noise_mask"] and out["batch_index"] == [0]


def test_a_sample_does_not_depend_on_its_batch(tiny_models, conds):
    one = _run(tiny_models, conds, latent=_latent(1), seed=21)
    two = _run(tiny_models, conds, latent=_latent(2), seed=21)
    assert torch.allclose(two[:1], one, atol=1e-4)
    assert not torch.allclose(two[1:], one, atol=1e-2)


def test_ipndm_and_euler_agree_on_the_first_step_and_cfg_pp_at_cfg_one(tiny_models, conds):
    one_step = dict(steps=1)
    assert torch.allclose(_run(tiny_models, conds, sampler_name="ipndm", **one_step),
                          _run(tiny_models, conds, sampler_name="euler", **one_step), atol=1e-6)
    # with cfg 1 and the negative equal to the positive, the guided and unguided predictions
    # coincide: CFG++ Euler is Euler (CFG++ evaluates the negative even at cfg 1, as ComfyUI)
    same = (conds[0], conds[0])
    assert torch.allclose(_run(tiny_models, same, sampler_name="euler_cfg_pp", cfg=1.0),
                          _run(tiny_models, same, sampler_name="euler", cfg=1.0), atol=1e-4)
