"""Flux family nodes: guidance, Kontext references and resolutions, Flux.2 latent and schedule."""

from __future__ import annotations

import math

import pytest
import torch

from opencomfy.nodes import family_flux as flux
from opencomfy.nodes.family_common import FamilyCapabilityError
from tests.nodes.family_fakes import FakeClip


def _cond():
    return [[torch.zeros(1, 3, 8), {"pooled_output": torch.ones(1, 8)}],
            [torch.ones(1, 3, 8), {"strength": 0.5}]]


def test_guidance_is_set_on_every_entry_without_touching_the_input():
    cond = _cond()
    (out,) = flux.FluxGuidance().execute(cond, 2.5)
    assert [opts["guidance"] for _, opts in out] == [2.5, 2.5]
    assert "guidance" not in cond[0][1]                       # input unchanged (outputs are cached)
    assert out[1][1]["strength"] == 0.5 and out[0][0] is cond[0][0]
    (off,) = flux.FluxDisableGuidance().execute(out)
    assert all("guidance" in opts and opts["guidance"] is None for _, opts in off)


def test_reference_latents_chain_and_method():
    a, b = torch.zeros(1, 16, 4, 4), torch.ones(1, 16, 2, 2)
    (once,) = flux.ReferenceLatent().execute(_cond(), {"samples": a})
    (twice,) = flux.ReferenceLatent().execute(once, {"samples": b})
    assert [t.shape for t in twice[0][1]["reference_latents"]] == [a.shape, b.shape]
    assert len(once[0][1]["reference_latents"]) == 1          # chaining copies, never appends in place
    (same,) = flux.ReferenceLatent().execute(once)            # no latent: unchanged
    assert same is once
    node = flux.FluxKontextMultiReferenceLatentMethod()
    assert node.execute(twice, "uxo/uno")[0][0][1]["reference_latents_method"] == "uxo"
    assert node.execute(twice, "index")[0][0][1]["reference_latents_method"] == "index"


@pytest.mark.parametrize(("size", "expected"), [((64, 64), (1024, 1024)), ((200, 100), (1456, 720)),
                                                ((30, 100), (672, 1568)), ((120, 100), (1104, 944))])
def test_kontext_resolution_is_the_nearest_aspect_ratio(size, expected):
    assert flux.kontext_resolution(*size) == expected


def test_kontext_image_scale_resizes_to_the_training_size():
    image = torch.rand(2, 20, 40, 3)
    (out,) = flux.FluxKontextImageScale().execute(image)
    assert out.shape == (2, 720, 1456, 3)
    assert 0.0 <= out.min() and out.max() <= 1.0


def test_empty_flux2_latent_shape():
    (latent,) = flux.EmptyFlux2LatentImage().execute(256, 128, 3)
    assert latent["samples"].shape == (3, 128, 8, 16) and not latent["samples"].any()


def _published_mu(seq_len: int, steps: int) -> float:
    """Flux.2's empirical mu written as two lines through (10 steps, 200 steps)."""
    m200 = 0.00016927 * seq_len + 0.45666666
    m10 = 8.73809524e-05 * seq_len + 1.89833333
    if seq_len > 4300:
        return m200
    return m10 + (m200 - m10) * (steps - 10) / 190


@pytest.mark.parametrize(("steps", "width", "height"), [(20, 1024, 1024), (4, 512, 512), (50, 256, 768)])
def test_flux2_scheduler_matches_the_published_formula(steps, width, height):
    (sigmas,) = flux.Flux2Scheduler().execute(steps, width, height)
    mu = _published_mu(round(width * height / 256), steps)
    expected = [1.0] + [math.exp(mu) / (math.exp(mu) + (1 / t - 1))
                        for t in (1 - i / steps for i in range(1, steps))] + [0.0]
    assert sigmas.shape == (steps + 1,)
    assert torch.allclose(sigmas, torch.tensor(expected, dtype=torch.float32), atol=1e-5)
    assert torch.all(sigmas[:-1] > sigmas[1:])


def test_clip_text_encode_flux_routes_both_prompts_and_sets_guidance():
    clip = FakeClip(("l", "t5xxl"))
    (cond,) = flux.CLIPTextEncodeFlux().execute(clip, "a b", "three four five", 4.0)
    tokens = clip.encoded[0]
    assert [len(tokens["l"][0]), len(tokens["t5xxl"][0])] == [2, 3]
    assert cond[0][1]["guidance"] == 4.0 and "pooled_output" in cond[0][1]


def test_clip_text_encode_flux_names_the_missing_t5_tower():
    with pytest.raises(FamilyCapabilityError, match=r"T5-XXL.*missing t5xxl"):
        flux.CLIPTextEncodeFlux().execute(FakeClip(("l",)), "a", "b", 3.5)
