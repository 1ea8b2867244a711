"""Step caching (EasyCache, LazyCache) and TorchCompileModel: the skip decisions against
arithmetic done by hand on a fake model, and on the tiny SD 1.x checkpoint the number of UNet
calls a run makes and its result against the uncached run."""

from __future__ import annotations

import logging

import pytest
import torch

from opencomfy.diffusion import step_cache as sc
from opencomfy.nodes import model_patches_cache as pc

STEPS = 6


@pytest.fixture(scope="module")
def parts(tiny_models):
    from opencomfy.nodes.diffusion_conditioning import CLIPTextEncode

    model, clip, _vae = tiny_models
    return model, CLIPTextEncode().encode(clip, "a lighthouse")[0], CLIPTextEncode().encode(clip, "blurry")[0]


def _sample(model, pos, neg, cfg=5.0, steps=STEPS):
    from opencomfy.nodes.diffusion_sampling import common_ksampler

    latent = {"samples": torch.zeros(1, 4, 8, 8)}
    return common_ksampler(model, 3, steps, cfg, "euler", "normal", pos, neg, latent)["samples"]


def _counted(model, run):
    """(run(), number of UNet forward calls it made)."""
    calls = []
    handle = model.unet.register_forward_pre_hook(lambda module, args: calls.append(1))
    try:
        return run(), len(calls)
    finally:
        handle.remove()


def _sigmas(model, steps=STEPS):
    from opencomfy.diffusion.sigmas import ksampler_sigmas

    return ksampler_sigmas(model, "normal", "euler", steps, 1.0)


# --- the decision, by hand ------------------------------------------------------------------

def test_easycache_decisions_follow_the_hand_computed_change_rates():
    """A fake model: out = 2x + 1 for the positive slice, 3x for the negative. Inputs are
    constant latents 1, 2, 3, 4, 5; the threshold is 0.5. By hand: step 1 learns the rate
    |dout| / |din| = 2; step 2 estimates 2 * |3 - 2| / |5| = 0.4 < 0.5 and skips (output =
    input + the last evaluated difference); step 3 adds 2 * |4 - 2| / 5 = 0.8 (1.2 in all) and
    runs; step 4 estimates 2 * 1 / 9 and skips again."""
    cache = sc.StepCache(0.5, 0.0, 1.0)
    cache.start_sigma, cache.end_sigma = float("inf"), 0.0
    calls = []

    def executor(x, timestep, *args, **kwargs):
        calls.append(float(x[0, 0, 0, 0]))
        return torch.cat([2 * x[:1] + 1, 3 * x[1:]])

    outputs = []
    for step, value in enumerate([1.0, 2.0, 3.0, 4.0, 5.0]):
        cache.skip_step = False              # what the CALC_COND_BATCH wrapper does each step
        x = torch.full((2, 4, 16, 16), value)
        to = {"easycache": cache, "sigmas": torch.full((2,), 10.0 - step), "cond_or_uncond": [0, 1]}
        outputs.append(sc.diffusion_model_wrapper(executor, x, None, None, None, None, to))
    assert calls == [1.0, 2.0, 4.0]
    assert cache.skipped == 2
    pos = [float(o[0, 0, 0, 0]) for o in outputs]
    neg = [float(o[1, 0, 0, 0]) for o in outputs]
    assert pos == [3.0, 5.0, 3.0 + (5.0 - 2.0), 9.0, 5.0 + (9.0 - 4.0)]
    assert neg == [3.0, 6.0, 3.0 + (6.0 - 2.0), 12.0, 5.0 + (12.0 - 4.0)]
    assert float(cache.rate) == pytest.approx(2.0)


def test_easycache_runs_everything_outside_its_window():
    cache = sc.StepCache(100.0, 0.0, 1.0)
    cache.start_sigma, cache.end_sigma = 5.0, 2.0
    calls = []

    def executor(x, timestep, *args, **kwargs):
        calls.append(1)
        return x * 2

    for sigma in (8.0, 7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0):
        cache.skip_step = False
        to = {"easycache": cache, "sigmas": torch.full((1,), sigma), "cond_or_uncond": [0]}
        sc.diffusion_model_wrapper(executor, torch.full((1, 4, 8, 8), sigma), None, None, None, None, to)
    # Before the window: run, nothing learned. In it: two runs to learn, then skips (5, 4 run;
    # 3 skipped). Past its end (sigma <= 2): run.
    assert len(calls) == 3 + 2 + 2 and cache.skipped == 1


# --- on the tiny checkpoint -------------------------------------------------------------------

def test_easycache_threshold_zero_is_uncached_and_a_huge_one_skips_steps(parts):
    model, pos, neg = parts
    plain, plain_calls = _counted(model, lambda: _sample(model, pos, neg))
    assert plain_calls == STEPS                       # cond and uncond batched: one call a step
    never = pc.EasyCache().patch(model, 0.0, 0.0, 1.0, False)[0]
    out, calls = _counted(model, lambda: _sample(never, pos, neg))
    assert calls == STEPS
    torch.testing.assert_close(out, plain)
    always = sc.with_step_cache(model, sc.StepCache(1e9, 0.0, 1.0), lazy=False)
    out, calls = _counted(model, lambda: _sample(always, pos, neg))
    assert calls == 2                                 # two evaluations to learn the rate, then reuse
    assert torch.isfinite(out).all() and not torch.equal(out, plain)
    # The window: steps before start_percent run without tracking; two more learn; the rest skip.
    sigmas = _sigmas(model)
    start = model.schedule.percent_to_sigma(0.5)
    before = sum(1 for s in sigmas[:-1] if float(s) > start)
    late = sc.with_step_cache(model, sc.StepCache(1e9, 0.5, 1.0), lazy=False)
    assert _counted(model, lambda: _sample(late, pos, neg))[1] == before + 2


def test_lazycache_threshold_zero_is_uncached_and_a_huge_one_skips_steps(parts, caplog):
    model, pos, neg = parts
    plain = _sample(model, pos, neg)
    never = pc.LazyCache().patch(model, 0.0, 0.0, 1.0, False)[0]
    out, calls = _counted(model, lambda: _sample(never, pos, neg))
    assert calls == STEPS
    torch.testing.assert_close(out, plain)
    always = sc.with_step_cache(model, sc.LazyStepCache(1e9, 0.0, 1.0, verbose=True), lazy=True)
    with caplog.at_level(logging.INFO, logger="opencomfy.diffusion.step_cache"):
        out, calls = _counted(model, lambda: _sample(always, pos, neg))
    assert calls == 2 and torch.isfinite(out).all()
    assert f"LazyCache: skipped {STEPS - 2}/{STEPS} steps" in caplog.text
    assert "output change rates" in caplog.text       # verbose
    # LazyCache tracks before its window, so only one more step is needed to learn the rate.
    sigmas = _sigmas(model)
    start = model.schedule.percent_to_sigma(0.5)
    before = sum(1 for s in sigmas[:-1] if float(s) > start)
    late = sc.with_step_cache(model, sc.LazyStepCache(1e9, 0.5, 1.0), lazy=True)
    assert _counted(model, lambda: _sample(late, pos, neg))[1] == before + 1
    # The MODEL's own holder is untouched by runs (each run works on a copy).
    holder = always.model_options["transformer_options"]["easycache"]
    assert holder.skipped == 0 and holder.x_prev is None


# --- torch.compile ----------------------------------------------------------------------------

@pytest.mark.slow
def test_torch_compile_runs_the_compiled_module_with_the_same_result(parts):
    from opencomfy.diffusion import patcher_extension as ext
    from opencomfy.diffusion.torch_compile import compile_model

    model, pos, neg = parts
    plain = _sample(model, pos, neg, steps=2)
    compiled = compile_model(model, "eager")
    seen = []
    compiled.add_wrapper(ext.WrappersMP.DIFFUSION_MODEL,
                         lambda executor, *a, **k: (seen.append(type(executor.class_obj).__name__), executor(*a, **k))[1])
    torch.testing.assert_close(_sample(compiled, pos, neg, steps=2), plain, atol=1e-5, rtol=1e-5)
    assert seen and set(seen) == {"OptimizedModule"}
    assert type(model.model.diffusion_model).__name__ == "UNet2DConditionModel"   # swapped back
    with pytest.raises(ValueError, match="unknown torch.compile backend"):
        pc.TorchCompileModel().patch(model, "no-such-backend")
