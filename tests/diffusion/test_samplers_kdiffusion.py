"""The k-diffusion-style module for custom nodes, and ComfyUI's weight precision flags."""

from __future__ import annotations

import math

import pytest
import torch

from opencomfy.diffusion import k_sampling as k
from opencomfy.diffusion.noise_samplers import default_noise_sampler
from opencomfy.diffusion.samplers import SAMPLERS


def gaussian_model(mu=0.3, sd=0.5):
    def model(x, sigma, **extra):
        s = sigma.reshape(-1, *([1] * (x.ndim - 1)))
        return (sd ** 2 * x + s ** 2 * mu) / (sd ** 2 + s ** 2)
    return model


def test_every_k_diffusion_name_is_there_with_comfyui_signature():
    for name in SAMPLERS:
        if name in ("ddim", "uni_pc", "uni_pc_bh2"):
            continue
        assert callable(getattr(k, f"sample_{name}")), name
    sigmas = k.get_sigmas_karras(5, 0.03, 14.6)
    assert len(sigmas) == 6 and sigmas[-1] == 0
    assert torch.allclose(k.get_sigmas_exponential(3, 1.0, math.e ** 2)[:3], torch.tensor([math.e ** 2, math.e, 1.0]))
    assert len(k.get_sigmas_polyexponential(4, 0.1, 10)) == 5 and len(k.get_sigmas_vp(4)) == 5
    assert len(k.get_sigmas_laplace(4, 0.1, 10)) == 4
    assert torch.equal(k.to_d(torch.ones(2), torch.tensor(2.0), torch.zeros(2)), torch.full((2,), 0.5))


def test_sample_euler_runs_a_model_and_reports_steps():
    x = torch.randn(1, 4, 4, 4, generator=torch.Generator().manual_seed(0)) * 14.6
    sigmas = k.get_sigmas_karras(8, 0.03, 14.6)
    seen = []
    out = k.sample_euler(gaussian_model(), x, sigmas, extra_args={}, callback=seen.append, disable=True)
    assert [step["i"] for step in seen] == list(range(8))
    assert set(seen[0]) == {"x", "i", "sigma", "sigma_hat", "denoised"}
    assert torch.isfinite(out).all() and abs(out.mean().item() - 0.3) < 0.3


def test_the_seed_in_extra_args_drives_the_noise():
    x = torch.zeros(1, 4, 8, 8)
    sigmas = k.get_sigmas_karras(4, 0.03, 14.6)
    a = k.sample_euler_ancestral(gaussian_model(), x, sigmas, extra_args={"seed": 3})
    assert torch.equal(a, k.sample_euler_ancestral(gaussian_model(), x, sigmas, extra_args={"seed": 3}))
    assert not torch.equal(a, k.sample_euler_ancestral(gaussian_model(), x, sigmas, extra_args={"seed": 4}))
    b = k.sample_dpmpp_2m_sde(gaussian_model(), x, sigmas, extra_args={"seed": 3})
    assert torch.equal(b, k.sample_dpmpp_2m_sde(gaussian_model(), x, sigmas, extra_args={"seed": 3}))
    # an explicit noise sampler wins
    c = k.sample_euler_ancestral(gaussian_model(), x, sigmas, noise_sampler=default_noise_sampler(x, 3))
    assert torch.equal(a, c)


def test_cfg_pp_reads_the_unguided_prediction_through_post_cfg_functions():
    seen_options = []

    def guided_model(x, sigma, model_options=None, **extra):
        cond, uncond = gaussian_model(0.3)(x, sigma), gaussian_model(-0.2)(x, sigma)
        denoised = uncond + 2.0 * (cond - uncond)
        seen_options.append(model_options)
        for fn in model_options.get("sampler_post_cfg_function", []):
            denoised = fn({"denoised": denoised, "uncond_denoised": uncond, "cond_denoised": cond})
        return denoised

    x = torch.randn(1, 4, 4, 4, generator=torch.Generator().manual_seed(0)) * 14.6
    sigmas = k.get_sigmas_karras(4, 0.03, 14.6)
    out = k.sample_euler_cfg_pp(guided_model, x, sigmas, extra_args={"model_options": {}})
    assert seen_options[0]["disable_cfg1_optimization"] is True   # the negative even at cfg 1
    assert not torch.allclose(out, k.sample_euler(guided_model, x, sigmas, extra_args={"model_options": {}}))
    with pytest.raises(RuntimeError, match="sampler_post_cfg_function"):
        k.sample_euler_cfg_pp(gaussian_model(), x, sigmas)


def test_unsupported_options_are_refused_not_ignored():
    x, sigmas = torch.zeros(1, 4, 2, 2), k.get_sigmas_karras(3, 0.03, 14.6)
    k.sample_euler(gaussian_model(), x, sigmas, s_churn=0.0)
    with pytest.raises(TypeError, match="s_churn"):
        k.sample_euler(gaussian_model(), x, sigmas, s_churn=1.0)


def test_dpm_fast_and_adaptive_take_comfyui_arguments():
    x = torch.randn(1, 4, 4, 4, generator=torch.Generator().manual_seed(0)) * 14.6
    fast = k.sample_dpm_fast(gaussian_model(), x, 0.03, 14.6, 30)
    adaptive = k.sample_dpm_adaptive(gaussian_model(), x, 0.03, 14.6)
    assert torch.allclose(fast, adaptive, atol=0.05)


# -- precision ------------------------------------------------------------------------------------

@pytest.fixture
def precision_flags():
    from opencomfy.compat.comfy.cli_args import args

    names = [n for n in vars(args) if n.startswith(("fp16_", "fp32_", "bf16_", "fp8_", "force_fp"))]
    saved = {n: getattr(args, n) for n in names}
    yield args
    for n, v in saved.items():
        setattr(args, n, v)


def test_text_encoder_is_stored_in_fp16_unless_told(precision_flags):
    from opencomfy.diffusion.precision import load_dtypes, round_through

    cpu = torch.device("cpu")
    assert load_dtypes("text_encoder", cpu) == (torch.float16, torch.float32)
    assert load_dtypes("unet", cpu) == (torch.float32, torch.float32)
    assert load_dtypes("vae", cpu) == (torch.float32, torch.float32)
    weights = {"w": torch.tensor([1.0 + 1e-4]), "ids": torch.tensor([3])}
    rounded = round_through(weights, *load_dtypes("text_encoder", cpu))
    assert rounded["w"].dtype == torch.float32 and rounded["w"].item() == 1.0 and rounded["ids"].item() == 3
    precision_flags.fp32_text_enc = True
    assert load_dtypes("text_encoder", cpu) == (torch.float32, torch.float32)
    precision_flags.fp16_unet = True
    precision_flags.bf16_vae = True
    assert load_dtypes("unet", cpu) == (torch.float16, torch.float32)     # computed in fp32 on the CPU
    assert load_dtypes("vae", cpu) == (torch.bfloat16, torch.bfloat16)


def test_precision_flags_reach_comfy_args_from_the_command_line(precision_flags):
    from opencomfy.cli import build_parser, config_from_args
    from opencomfy.compat.comfy.cli_args import apply_config

    config = config_from_args(build_parser().parse_args(["serve", "--fp32-text-enc", "--fp16-vae"]))
    assert set(config.precision_flags) == {"fp32_text_enc", "fp16_vae"}
    apply_config(config)
    assert precision_flags.fp32_text_enc and precision_flags.fp16_vae and not precision_flags.bf16_unet


def test_loaded_text_encoder_weights_are_fp16_values(tiny_models):
    _, clip, _ = tiny_models
    weight = next(clip.parts[0].model.parameters())
    assert weight.dtype == torch.float32
    assert torch.equal(weight, weight.half().float())
