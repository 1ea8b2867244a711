"""The MODEL patch mechanism (ModelPatcher) and the CFG-level patch nodes, checked against
independent computations on the tiny SD 1.x checkpoint and on synthetic predictions."""

from __future__ import annotations

import math

import pytest
import torch

from opencomfy.diffusion import guiders
from opencomfy.diffusion.model_patcher import ModelPatcher
from opencomfy.nodes import model_patches_guidance as g


@pytest.fixture(scope="module")
def parts(tiny_models):
    from opencomfy.nodes.diffusion_conditioning import CLIPTextEncode

    model, clip, _vae = tiny_models
    pos = CLIPTextEncode().encode(clip, "a lighthouse")[0]
    neg = CLIPTextEncode().encode(clip, "blurry")[0]
    empty = CLIPTextEncode().encode(clip, "")[0]
    return model, pos, neg, empty


def _sample(model, pos, neg, cfg=5.0, steps=2, latent=None):
    from opencomfy.nodes.diffusion_sampling import common_ksampler

    latent = latent or {"samples": torch.zeros(1, 4, 8, 8)}
    return common_ksampler(model, 3, steps, cfg, "euler", "normal", pos, neg, latent)["samples"]


def _guided(model, cond, uncond, x, sigma=2.0, scale=4.0):
    """ComfyUI's guided step for given cond/uncond predictions, with the MODEL's functions."""
    options = dict(model.model_options)
    options["sampler_calc_cond_batch_function"] = lambda args: [cond.clone(), uncond.clone()]
    timestep = torch.full((x.shape[0],), sigma, dtype=torch.float64)
    guided, _ = guiders.sampling_function(model, x, timestep, [object()], [object()], scale, options)
    return guided


@pytest.fixture
def preds():
    gen = torch.Generator().manual_seed(0)
    return [torch.randn(2, 4, 6, 6, generator=gen) for _ in range(3)]   # cond, uncond, x


# --- the patcher ---------------------------------------------------------------------------

def test_loaded_model_is_a_model_patcher_and_the_compat_class(tiny_models):
    from opencomfy.compat import aliases

    aliases.install()
    import comfy.model_patcher
    import comfy.patcher_extension

    model = tiny_models[0]
    assert isinstance(model, comfy.model_patcher.ModelPatcher) and isinstance(model, ModelPatcher)
    assert comfy.patcher_extension.WrappersMP.OUTER_SAMPLE == "outer_sample"
    assert model.get_model_object("model_sampling") is model.model.model_sampling
    assert model.model.diffusion_model is model.unet and model.model_dtype() == torch.float32
    assert model.model.model_type.name == "EPS" and model.size > 0


def test_clone_shares_the_weights_and_copies_the_patches(parts):
    model, pos, neg, _empty = parts
    before = _sample(model, pos, neg)
    clone = model.clone()
    assert clone.is_clone(model) and clone.unet is model.unet
    clone.set_model_sampler_cfg_function(lambda args: args["cond"])
    clone.set_model_attn1_patch(lambda n, c, v, extra: (n, c, v))
    clone.set_model_attn1_replace(lambda q, k, v, extra: v, "middle", 0)
    clone.add_object_patch("latent_format", object())
    clone.add_patches({"diffusion_model.input_blocks.0.0.bias": torch.ones(32)})
    assert model.model_options == {"transformer_options": {}}
    assert model.object_patches == {} and model.patches == []
    assert ("middle", 0) in clone.model_options["transformer_options"]["patches_replace"]["attn1"]
    patched = g.RescaleCFG().patch(model, 0.7)[0]
    assert not torch.equal(_sample(patched, pos, neg), before)
    assert torch.equal(_sample(model, pos, neg), before)       # the original is untouched


def test_add_patches_applies_comfy_keyed_diffs_only_while_running(tiny_models):
    from opencomfy.diffusion.memory import models_in_use

    model = tiny_models[0]
    key = "diffusion_model.input_blocks.0.0.weight"
    sd = model.model_state_dict("diffusion_model.")
    assert key in sd and "diffusion_model.out.2.weight" in sd
    original = model.unet.conv_in.weight.detach().clone()
    diff = torch.randn_like(original)
    clone = model.clone()
    assert clone.add_patches({key: diff, "not.a.key": diff}, 0.5, 0.25) == [key]
    with models_in_use(clone):
        torch.testing.assert_close(model.unet.conv_in.weight, original * 0.25 + 0.5 * diff)
    torch.testing.assert_close(model.unet.conv_in.weight, original, rtol=0, atol=0)


def test_sampler_functions_get_comfyuis_arguments(parts):
    model, pos, neg, _empty = parts
    seen = {}
    m = model.clone()

    def record(name, result_key):
        def fn(args):
            seen.setdefault(name, set(args))
            return args[result_key]
        return fn

    m.set_model_sampler_pre_cfg_function(record("pre", "conds_out"))
    m.set_model_sampler_post_cfg_function(record("post", "denoised"))
    m.set_model_sampler_cfg_function(lambda args: seen.setdefault("cfg", set(args)) and
                                     args["uncond"] + (args["cond"] - args["uncond"]) * args["cond_scale"])
    m.set_model_unet_function_wrapper(lambda apply, a: seen.setdefault("unet", set(a) | set(a["c"]))
                                      and apply(a["input"], a["timestep"], **a["c"]))
    assert torch.allclose(_sample(m, pos, neg), _sample(model, pos, neg), atol=1e-4)
    assert {"conds", "conds_out", "cond_scale", "timestep", "input", "sigma", "model", "model_options"} <= seen["pre"]
    assert {"cond", "uncond", "cond_scale", "input", "sigma", "cond_denoised", "uncond_denoised",
            "model", "model_options"} <= seen["cfg"]
    assert {"denoised", "cond_denoised", "uncond_denoised", "input", "sigma", "model"} <= seen["post"]
    assert {"input", "timestep", "cond_or_uncond", "c_crossattn", "transformer_options"} <= seen["unet"]


def test_wrappers_run_around_sampling_and_the_unet(parts):
    from opencomfy.diffusion.patcher_extension import CallbacksMP, WrappersMP

    model, pos, neg, _empty = parts
    calls = []
    m = model.clone()
    for kind in (WrappersMP.OUTER_SAMPLE, WrappersMP.SAMPLER_SAMPLE, WrappersMP.PREDICT_NOISE,
                 WrappersMP.CALC_COND_BATCH, WrappersMP.APPLY_MODEL, WrappersMP.DIFFUSION_MODEL):
        def wrapper(executor, *args, kind=kind, **kwargs):
            calls.append(kind)
            return executor(*args, **kwargs)
        m.add_wrapper(kind, wrapper)
    m.add_callback(CallbacksMP.ON_PRE_RUN, lambda patcher: calls.append("pre_run"))
    clones = []
    m.add_callback(CallbacksMP.ON_CLONE, lambda original, clone: clones.append(clone))
    assert m.clone() is clones[0]
    assert torch.equal(_sample(m, pos, neg), _sample(model, pos, neg))
    assert calls[:3] == ["outer_sample", "pre_run", "sampler_sample"]
    assert {"predict_noise", "calc_cond_batch", "apply_model", "diffusion_model"} <= set(calls)


# --- CFG patches against their formulas ----------------------------------------------------

def test_rescale_cfg_matches_the_formula(tiny_models, preds):
    cond, uncond, x = preds
    model, sigma, scale, mult = tiny_models[0], 2.0, 4.0, 0.7
    out = _guided(g.RescaleCFG().patch(model, mult)[0], cond, uncond, x, sigma, scale)
    # By hand, in v space: v = (x / (s^2+1) - x0) * sqrt(s^2+1) / s.
    v_c = (x / (sigma ** 2 + 1) - cond) * math.sqrt(sigma ** 2 + 1) / sigma
    v_u = (x / (sigma ** 2 + 1) - uncond) * math.sqrt(sigma ** 2 + 1) / sigma
    v = v_u + scale * (v_c - v_u)
    ratio = v_c.std(dim=(1, 2, 3), keepdim=True) / v.std(dim=(1, 2, 3), keepdim=True)
    v = mult * v * ratio + (1 - mult) * v
    torch.testing.assert_close(out, x / (sigma ** 2 + 1) - v * sigma / math.sqrt(sigma ** 2 + 1))


def test_cfg_zero_star_cfgnorm_epsilon_and_mahiro(tiny_models, preds):
    cond, uncond, x = preds
    model, scale = tiny_models[0], 4.0
    cfg = uncond + scale * (cond - uncond)
    e_c, e_u = (x - cond).flatten(1), (x - uncond).flatten(1)
    alpha = ((e_c * e_u).sum(1) / ((e_u ** 2).sum(1) + 1e-8)).reshape(-1, 1, 1, 1)
    torch.testing.assert_close(_guided(g.CFGZeroStar().patch(model)[0], cond, uncond, x, scale=scale),
                               cfg + uncond * (alpha - 1) + scale * uncond * (1 - alpha))
    ratio = (cond.norm(dim=1, keepdim=True) / (cfg.norm(dim=1, keepdim=True) + 1e-8)).clamp(0, 1)
    torch.testing.assert_close(_guided(g.CFGNorm().patch(model, 0.5)[0], cond, uncond, x, scale=scale),
                               cfg * ratio * 0.5)
    torch.testing.assert_close(_guided(g.EpsilonScaling().patch(model, 1.25)[0], cond, uncond, x, scale=scale),
                               x - (x - cfg) / 1.25)
    mahiro = _guided(g.Mahiro().patch(model)[0], cond, uncond, x, scale=scale)
    assert mahiro.shape == cfg.shape and not torch.allclose(mahiro, cfg)


def test_apg_without_momentum_or_cap(tiny_models, preds):
    cond, uncond, x = preds
    model, scale, eta = tiny_models[0], 4.0, 0.3
    out = _guided(g.APG().patch(model, eta, 0.0, 0.0)[0], cond, uncond, x, scale=scale)
    diff = cond - uncond
    unit = cond / cond.flatten(1).norm(dim=1).reshape(-1, 1, 1, 1)
    parallel = (diff * unit).sum(dim=(1, 2, 3), keepdim=True) * unit
    # Plain CFG over the modified positive gives cond + scale * (damped guidance).
    torch.testing.assert_close(out, cond + scale * (diff - parallel + eta * parallel), atol=1e-4, rtol=1e-4)
    plain = _guided(g.APG().patch(model, 1.0, 0.0, 0.0)[0], cond, uncond, x, scale=scale)
    torch.testing.assert_close(plain, cond + scale * diff, atol=1e-4, rtol=1e-4)


def test_tcfg_fresca_renorm_and_latent_operation(tiny_models, preds):
    cond, uncond, x = preds
    model, scale = tiny_models[0], 3.0
    # TCFG: the negative score projected on the top singular vector of [uncond; cond] scores.
    out = _guided(g.TCFG().patch(model)[0], cond, uncond, x, scale=scale)
    damped = []
    for b in range(x.shape[0]):
        scores = torch.stack([(x - uncond)[b].flatten(), (x - cond)[b].flatten()])
        v1 = torch.linalg.svd(scores, full_matrices=False)[2][0]
        damped.append(((x - uncond)[b].flatten() @ v1) * v1)
    new_uncond = x - torch.stack(damped).reshape(x.shape)
    torch.testing.assert_close(out, new_uncond + scale * (cond - new_uncond), atol=1e-4, rtol=1e-4)
    # FreSca with both scales 1 changes nothing; a high-frequency scale of 0 keeps only the mean's
    # neighbourhood (a cutoff of 1 on a 6x6 grid keeps the 2x2 centre of the shifted spectrum).
    same = _guided(g.FreSca().patch(model, 1.0, 1.0, 1)[0], cond, uncond, x, scale=scale)
    torch.testing.assert_close(same, uncond + scale * (cond - uncond), atol=1e-5, rtol=1e-5)
    low = _guided(g.FreSca().patch(model, 1.0, 0.0, 1)[0], cond, uncond, x, scale=scale)
    guidance = (low - uncond) / scale
    spectrum = torch.fft.fftshift(torch.fft.fft2(guidance), dim=(-2, -1))
    assert spectrum[..., 0, :].abs().max() < 1e-4 and spectrum[..., 3, 3].abs().min() > 1e-3
    # RenormCFG: the guided prediction's norm is capped at renorm times the positive's.
    capped = _guided(g.RenormCFG().patch(model, 100.0, 1.0)[0], cond, uncond, x, scale=scale)
    torch.testing.assert_close(capped.flatten(1).norm(dim=1), cond.flatten(1).norm(dim=1))
    past = _guided(g.RenormCFG().patch(model, 1.0, 1.0)[0], cond, uncond, x, sigma=2.0, scale=scale)
    torch.testing.assert_close(past, cond)        # timestep above cfg_trunc: no guidance
    # LatentApplyOperationCFG runs the operation on the guidance.
    doubled = _guided(g.LatentApplyOperationCFG().patch(model, lambda latent: latent * 2)[0],
                      cond, uncond, x, scale=scale)
    torch.testing.assert_close(doubled, uncond + scale * 2 * (cond - uncond))


def test_perp_neg_patch_matches_the_perp_neg_guider(parts):
    from opencomfy.diffusion.noise import RandomNoise
    from opencomfy.diffusion.sampler_objects import sampler_object
    from opencomfy.diffusion.sigmas import ksampler_sigmas

    model, pos, neg, empty = parts
    out = _sample(g.PerpNeg().patch(model, empty, 0.5)[0], pos, neg, cfg=4.0)
    guider = guiders.PerpNegGuider(model)
    guider.set_conds(pos, neg, empty)
    guider.set_cfg(4.0, 0.5)
    latent = {"samples": torch.zeros(1, 4, 8, 8)}
    sigmas = ksampler_sigmas(model, "normal", "euler", 2, 1.0)
    expected = guider.sample(RandomNoise(3).generate_noise(latent), latent["samples"],
                             sampler_object("euler"), sigmas, seed=3)
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=1e-4)


def test_differential_diffusion_mask_is_the_thresholded_soft_mask(tiny_models):
    model = tiny_models[0]
    patched = g.DifferentialDiffusion().patch(model, 1.0)[0]
    fn = patched.model_options["denoise_mask_function"]
    sigmas = torch.tensor([10.0, 5.0, 1.0, 0.0])
    schedule = model.schedule
    mask = torch.linspace(0, 1, 16).reshape(1, 1, 4, 4)

    class Guider:
        inner_model = model

    out = fn(torch.tensor([5.0]), mask, extra_options={"model": Guider(), "sigmas": sigmas})
    t = lambda s: float(schedule.timestep(torch.tensor(s)))  # noqa: E731
    threshold = (t(5.0) - t(schedule.sigma_min)) / (t(10.0) - t(schedule.sigma_min))
    assert torch.equal(out, (mask >= threshold).float())
    half = g.DifferentialDiffusion().patch(model, 0.5)[0].model_options["denoise_mask_function"]
    torch.testing.assert_close(half(torch.tensor([5.0]), mask, extra_options={"model": Guider(), "sigmas": sigmas}),
                               0.5 * out + 0.5 * mask)


def test_differential_diffusion_runs_in_an_inpainting_sample(parts):
    model, pos, neg, _empty = parts
    latent = {"samples": torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1)),
              "noise_mask": torch.linspace(0, 1, 64).reshape(1, 8, 8)}
    plain = _sample(model, pos, neg, latent=latent)
    soft = _sample(g.DifferentialDiffusion().patch(model)[0], pos, neg, latent=latent)
    assert torch.isfinite(soft).all() and not torch.equal(plain, soft)
