"""ConditioningSetAreaStrength: an entry's strength weighs its prediction against the other
entries it overlaps (ComfyUI's weighted average), checked against the predictions of each entry
alone."""

from __future__ import annotations

import torch

from opencomfy.diffusion.conditioning import predict, resolve
from opencomfy.diffusion.memory import models_in_use
from opencomfy.nodes import diffusion_conditioning as cn


def _predict(model, cond, x, sigma):
    schedule = model.schedule
    with models_in_use(model):
        return predict(model, x * sigma, sigma, [resolve(cond, schedule=schedule, height=8, width=8)], {})[0]


def test_strength_weighs_overlapping_entries(tiny_models):
    model, clip, _ = tiny_models
    cat = cn.CLIPTextEncode().encode(clip, "a cat")[0]
    dog = cn.CLIPTextEncode().encode(clip, "a dog")[0]
    (strong_cat,) = cn.ConditioningSetAreaStrength().append(cat, 3.0)
    assert strong_cat[0][1]["strength"] == 3.0 and "strength" not in cat[0][1]
    assert torch.equal(strong_cat[0][0], cat[0][0])
    x = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(4))
    sigma = float(model.schedule.percent_to_sigma(0.4))
    p_cat, p_dog = _predict(model, cat, x, sigma), _predict(model, dog, x, sigma)
    assert not torch.allclose(p_cat, p_dog, atol=1e-3)
    # Alone, an entry's strength cancels out of the average.
    torch.testing.assert_close(_predict(model, strong_cat, x, sigma), p_cat, atol=1e-5, rtol=1e-5)
    # Together: (3 * cat + 1 * dog) / 4.
    (both,) = cn.ConditioningCombine().combine(strong_cat, dog)
    torch.testing.assert_close(_predict(model, both, x, sigma), (3 * p_cat + p_dog) / 4, atol=1e-5, rtol=1e-4)
    (zero_dog,) = cn.ConditioningSetAreaStrength().append(dog, 0.0)
    (cat_only,) = cn.ConditioningCombine().combine(cat, zero_dog)
    torch.testing.assert_close(_predict(model, cat_only, x, sigma), p_cat, atol=1e-5, rtol=1e-4)
