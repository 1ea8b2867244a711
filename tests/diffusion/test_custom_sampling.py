"""Custom sampling on a tiny SD 1.x model: one path with KSampler, guiders, samplers, noise."""

from __future__ import annotations

import pytest
import torch

from opencomfy.diffusion import guiders
from opencomfy.diffusion.sampler_objects import KSAMPLER, ksampler
from opencomfy.nodes import custom_sampling_guiders as g
from opencomfy.nodes import custom_sampling_samplers as s
from opencomfy.nodes import custom_sampling_sigmas as sig
from opencomfy.nodes.diffusion_conditioning import CLIPTextEncode
from opencomfy.nodes.diffusion_sampling import KSampler, KSamplerAdvanced


@pytest.fixture(scope="module")
def conds(tiny_models):
    clip = tiny_models[1]
    return tuple(CLIPTextEncode().encode(clip, text)[0] for text in ("a cat", "dog", ""))


def _latent(seed: int = 0):
    if seed:
        return {"samples": torch.randn(1, 4, 4, 4, generator=torch.manual_seed(seed))}
    return {"samples": torch.zeros(1, 4, 4, 4)}


def _advanced(model, guider, sampler_name="euler", scheduler="karras", steps=3, seed=7, latent=None,
              sampler=None):
    (noise,) = g.RandomNoise().get_noise(seed)
    (sampler,) = (sampler,) if sampler is not None else s.KSamplerSelect().get_sampler(sampler_name)
    (sigmas,) = sig.BasicScheduler().get_sigmas(model, scheduler, steps, 1.0)
    return g.SamplerCustomAdvanced().sample(noise, guider, sampler, sigmas, latent or _latent())


def _cfg(model, conds, cfg=5.0):
    return g.CFGGuider().get_guider(model, conds[0], conds[1], cfg)[0]


@pytest.mark.parametrize("sampler_name", ["euler", "dpmpp_2m_sde", "euler_ancestral", "dpmpp_2m_cfg_pp"])
def test_custom_advanced_equals_ksampler(tiny_models, conds, sampler_name):
    model = tiny_models[0]
    out, denoised = _advanced(model, _cfg(model, conds), sampler_name)
    (expected,) = KSampler().sample(model, 7, 3, 5.0, sampler_name, "karras", conds[0], conds[1], _latent())
    assert torch.equal(out["samples"], expected["samples"])
    assert denoised["samples"].shape == out["samples"].shape


def test_sampler_custom_equals_ksampler(tiny_models, conds):
    model = tiny_models[0]
    (sampler,) = s.SamplerEulerAncestral().get_sampler(1.0, 1.0)
    (sigmas,) = sig.BasicScheduler().get_sigmas(model, "normal", 3, 1.0)
    out, _ = g.SamplerCustom().sample(model, True, 4, 6.0, conds[0], conds[1], sampler, sigmas, _latent())
    (expected,) = KSampler().sample(model, 4, 3, 6.0, "euler_ancestral", "normal", conds[0], conds[1],
                                    _latent())
    assert torch.equal(out["samples"], expected["samples"])


def test_split_sigmas_in_two_runs_equals_one(tiny_models, conds):
    model = tiny_models[0]
    guider = _cfg(model, conds)
    (sampler,) = s.KSamplerSelect().get_sampler("euler")
    (sigmas,) = sig.BasicScheduler().get_sigmas(model, "karras", 6, 1.0)
    high, low = sig.SplitSigmas().get_sigmas(sigmas, 3)
    (noise,) = g.RandomNoise().get_noise(9)
    (silent,) = g.DisableNoise().get_noise()
    first, _ = g.SamplerCustomAdvanced().sample(noise, guider, sampler, high, _latent())
    second, _ = g.SamplerCustomAdvanced().sample(silent, guider, sampler, low, first)
    whole, _ = g.SamplerCustomAdvanced().sample(noise, guider, sampler, sigmas, _latent())
    assert torch.allclose(second["samples"], whole["samples"], atol=1e-5)
    # the same split through KSamplerAdvanced
    (adv,) = KSamplerAdvanced().sample(model, "enable", 9, 6, 5.0, "euler", "karras", conds[0], conds[1],
                                       _latent(), 0, 3, "enable")
    assert torch.equal(adv["samples"], first["samples"])


def test_denoised_output_is_the_last_prediction(tiny_models, conds):
    model = tiny_models[0]
    # at the last step (sigma -> 0) the sample lands on the prediction itself
    out, denoised = _advanced(model, _cfg(model, conds), "euler", steps=2)
    assert torch.allclose(out["samples"], denoised["samples"], atol=1e-5)
    # stopped half-way, the sample still holds noise that the prediction has not
    (sigmas,) = sig.BasicScheduler().get_sigmas(model, "karras", 4, 1.0)
    high, _ = sig.SplitSigmas().get_sigmas(sigmas, 2)
    (noise,) = g.RandomNoise().get_noise(7)
    out, denoised = g.SamplerCustomAdvanced().sample(noise, _cfg(model, conds), ksampler("euler"), high,
                                                     _latent())
    assert not torch.allclose(out["samples"], denoised["samples"], atol=1e-2)


def test_basic_and_dual_guiders_reduce_to_cfg(tiny_models, conds):
    model = tiny_models[0]
    (basic,) = g.BasicGuider().get_guider(model, conds[0])
    one, _ = _advanced(model, basic)
    plain, _ = _advanced(model, _cfg(model, (conds[0], conds[2]), cfg=1.0))
    assert torch.equal(one["samples"], plain["samples"])
    cfg, _ = _advanced(model, _cfg(model, conds, cfg=5.0))
    for style in ("regular", "nested"):
        # cond2 as the negative of CFG, its own negative weighted 1: plain CFG
        (dual,) = g.DualCFGGuider().get_guider(model, conds[0], conds[1], conds[2], 5.0, 1.0, style)
        out, _ = _advanced(model, dual)
        assert torch.allclose(out["samples"], cfg["samples"], atol=1e-4), style
    (dual,) = g.DualCFGGuider().get_guider(model, conds[0], conds[1], conds[2], 5.0, 3.0, "regular")
    out, _ = _advanced(model, dual)
    assert not torch.allclose(out["samples"], cfg["samples"], atol=1e-3)


def test_perp_neg(tiny_models, conds):
    toward = torch.tensor([1.0, 0.0])
    # a negative along the positive direction is ignored; a perpendicular one is pushed from
    assert torch.allclose(guiders.perp_neg(toward, 2 * toward, torch.zeros(2), 1.0, 3.0), 3 * toward)
    assert torch.allclose(guiders.perp_neg(toward, torch.tensor([0.0, 1.0]), torch.zeros(2), 0.5, 2.0),
                          torch.tensor([2.0, -1.0]))
    model = tiny_models[0]
    # with the empty prompt as the negative, Perp-Neg is CFG from the empty prompt
    (perp,) = g.PerpNegGuider().execute(model, conds[0], conds[2], conds[2], 5.0, 1.0)
    out, _ = _advanced(model, perp)
    cfg, _ = _advanced(model, _cfg(model, (conds[0], conds[2])))
    assert torch.allclose(out["samples"], cfg["samples"], atol=1e-4)
    assert g.PerpNegGuider.GET_NODE_INFO_V1()["experimental"] is True


def test_sampler_options(tiny_models, conds):
    model = tiny_models[0]
    guider = _cfg(model, conds)
    default, _ = _advanced(model, guider, "euler_ancestral")
    (same,) = s.SamplerEulerAncestral().get_sampler(1.0, 1.0)
    assert torch.equal(_advanced(model, guider, sampler=same)[0]["samples"], default["samples"])
    (quiet,) = s.SamplerEulerAncestral().get_sampler(1.0, 0.0)
    (deterministic,) = s.SamplerEulerAncestral().get_sampler(0.0, 1.0)
    a = _advanced(model, guider, sampler=quiet)[0]["samples"]
    b = _advanced(model, guider, sampler=deterministic)[0]["samples"]
    assert not torch.allclose(a, default["samples"], atol=1e-3)
    assert torch.allclose(b, _advanced(model, guider, "euler")[0]["samples"], atol=1e-5)
    (lms,) = s.SamplerLMS().get_sampler(1)
    assert torch.allclose(_advanced(model, guider, sampler=lms)[0]["samples"],
                          _advanced(model, guider, "euler")[0]["samples"], atol=1e-5)
    for node, args in ((s.SamplerDPMPP_2M_SDE(), ("heun", 1.0, 1.0, "cpu")),
                       (s.SamplerDPMPP_SDE(), (1.0, 1.0, 0.5, "gpu")),
                       (s.SamplerDPMPP_3M_SDE(), (1.0, 1.0, "cpu")),
                       (s.SamplerDPMPP_2S_Ancestral(), (1.0, 1.0)),
                       (s.SamplerEulerAncestralCFGPP(), (1.0, 1.0))):
        (sampler,) = node.get_sampler(*args)
        out = _advanced(model, guider, sampler=sampler)[0]["samples"]
        assert torch.isfinite(out).all(), type(node).__name__
    with pytest.raises(ValueError, match="option"):
        ksampler("euler", {"bogus": 1})
    with pytest.raises(ValueError, match="not implemented"):
        s.KSamplerSelect().get_sampler("no_such_sampler")


def test_a_k_diffusion_style_sampler_function(tiny_models, conds):
    """A SAMPLER made by a custom node from its own k-diffusion style function."""
    seen = []

    def my_euler(model, x, sigmas, extra_args=None, callback=None, disable=None, scale=1.0):
        for i in range(len(sigmas) - 1):
            denoised = model(x, sigmas[i] * x.new_ones([x.shape[0]]), **extra_args)
            seen.append(extra_args["seed"])
            callback({"i": i, "x": x, "sigma": sigmas[i], "sigma_hat": sigmas[i], "denoised": denoised})
            x = x + (x - denoised) / sigmas[i] * (sigmas[i + 1] - sigmas[i]) * scale
        return x

    model = tiny_models[0]
    guider = _cfg(model, conds)
    out, denoised = _advanced(model, guider, sampler=KSAMPLER(my_euler, {"scale": 1.0}))
    assert torch.allclose(out["samples"], _advanced(model, guider, "euler")[0]["samples"], atol=1e-5)
    assert seen == [7, 7, 7]
    assert torch.allclose(out["samples"], denoised["samples"], atol=1e-5)


def test_noise_mask_keeps_the_unmasked_region(tiny_models, conds):
    model = tiny_models[0]
    mask = torch.zeros(1, 4, 4)
    mask[:, 1:3, 1:3] = 1.0
    latent = {**_latent(3), "noise_mask": mask}
    (sigmas,) = sig.BasicScheduler().get_sigmas(model, "normal", 3, 0.6)
    (sampler,) = s.KSamplerSelect().get_sampler("euler")
    out, _ = g.SamplerCustom().sample(model, True, 1, 5.0, conds[0], conds[1], sampler, sigmas, latent)
    keep = (mask == 0).expand(1, 4, 4, 4)
    assert torch.allclose(out["samples"][keep], latent["samples"][keep], atol=1e-5)
    assert out["noise_mask"] is mask
    (expected,) = KSampler().sample(model, 1, 3, 5.0, "euler", "normal", conds[0], conds[1], latent, 0.6)
    assert torch.equal(out["samples"], expected["samples"])


def test_add_noise_and_empty_sigmas(tiny_models, conds):
    model = tiny_models[0]
    (noise,) = g.RandomNoise().get_noise(5)
    sigmas = torch.tensor([3.0, 1.0, 0.0])
    (noisy,) = g.AddNoise().add_noise(model, noise, sigmas, _latent())
    expected = noise.generate_noise(_latent()) * 3.0 / model.scale_factor
    assert torch.allclose(noisy["samples"], expected, atol=1e-5)
    source = _latent(2)
    (noisy,) = g.AddNoise().add_noise(model, noise, sigmas, source)
    assert torch.allclose(noisy["samples"], source["samples"] + noise.generate_noise(source) * 3.0
                          / model.scale_factor, atol=1e-5)
    (same,) = g.AddNoise().add_noise(model, noise, torch.zeros(0), source)
    assert same is source
    out, _ = g.SamplerCustomAdvanced().sample(noise, _cfg(model, conds), ksampler("euler"), torch.zeros(0),
                                              source)
    assert torch.equal(out["samples"], source["samples"])
    with pytest.raises(ValueError, match="SIGMAS"):
        g.SamplerCustomAdvanced().sample(noise, _cfg(model, conds), ksampler("euler"), [1.0, 0.0], source)


def test_comfyui_module_for_custom_nodes(tiny_models, conds):
    """Custom nodes import these classes from comfy_extras and build on them."""
    from opencomfy import compat

    compat.install()
    from comfy_extras.nodes_custom_sampler import (Guider_Basic, Noise_EmptyNoise, Noise_RandomNoise,
                                                   NODE_CLASS_MAPPINGS, SamplerCustomAdvanced)

    assert NODE_CLASS_MAPPINGS["SamplerCustomAdvanced"] is SamplerCustomAdvanced is g.SamplerCustomAdvanced
    assert Noise_EmptyNoise().generate_noise(_latent()).abs().sum() == 0
    model = tiny_models[0]
    guider = Guider_Basic(model)
    guider.set_conds(conds[0])
    out, _ = SamplerCustomAdvanced().sample(Noise_RandomNoise(7), guider, ksampler("euler"),
                                            sig.BasicScheduler().get_sigmas(model, "karras", 3, 1.0)[0],
                                            _latent())
    assert torch.equal(out["samples"], _advanced(model, g.BasicGuider().get_guider(model, conds[0])[0])[0]["samples"])
