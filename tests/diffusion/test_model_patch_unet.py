"""UNet patches on our diffusers UNet (block traversal, attention processors, FreeU, PAG) and
the ModelSampling*/ModelComputeDtype nodes, against independent computations."""

from __future__ import annotations

import math

import pytest
import torch

from opencomfy.nodes import model_patches_sampling as ms
from opencomfy.nodes import model_patches_unet as mu


@pytest.fixture(scope="module")
def model(tiny_models):
    return tiny_models[0]


def _call(model, options, x=None, sigma=3.0):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, 4, 8, 8, generator=gen) if x is None else x
    context = torch.randn(1, 77, 32, generator=gen)
    with torch.no_grad():
        return model.denoise_batch(x, sigma, context, model_options=options, cond_or_uncond=[0])


def _options(**patches):
    return {"transformer_options": {"patches": {k: [v] for k, v in patches.items()}}}


def test_block_by_block_forward_equals_diffusers(model):
    blocks = []

    def noop(h, hsp, to):
        blocks.append(to["block"])
        return h, hsp

    plain = _call(model, {})
    walked = _call(model, _options(output_block_patch=noop))
    torch.testing.assert_close(walked, plain, atol=1e-5, rtol=1e-5)
    # The tiny UNet has 2 levels of 1 layer: LDM output blocks 0..3.
    assert blocks == [("output", n) for n in range(4)]
    seen = []
    _call(model, _options(input_block_patch=lambda h, to: seen.append(to["block"]) or h))
    assert seen == [("input", n) for n in range(4)]     # conv_in, layer, downsampler, layer


def test_attention_patches_map_comfyuis_block_names(model):
    from opencomfy.diffusion.unet_patches import attention_sites

    sites = sorted({(s.kind, s.block, s.block_index, s.transformer_index)
                    for s in attention_sites(model.unet).values()})
    # Tiny UNet: attention at input 1 (down level 0), the middle and output 2, 3 (up level 1).
    assert sites == [("attn1", ("input", 1), 0, 0), ("attn1", ("middle", 0), 0, 1),
                     ("attn1", ("output", 2), 0, 2), ("attn1", ("output", 3), 0, 3),
                     ("attn2", ("input", 1), 0, 0), ("attn2", ("middle", 0), 0, 1),
                     ("attn2", ("output", 2), 0, 2), ("attn2", ("output", 3), 0, 3)]
    calls = []

    def passthrough(n, context, value, extra):
        calls.append((extra["block"], extra["n_heads"], extra["cond_or_uncond"]))
        return n, context, value

    plain = _call(model, {})
    torch.testing.assert_close(_call(model, _options(attn1_patch=passthrough)), plain, atol=1e-5, rtol=1e-5)
    assert [c[0] for c in calls] == [("input", 1), ("middle", 0), ("output", 2), ("output", 3)]
    assert calls[0][2] == [0]


def test_identity_attention_replacement_is_pag_perturbation(model):
    """Replacing the middle self-attention by ``v`` equals running the attention module as
    ``to_out(to_v(x))``, computed here by a processor of our own."""
    from diffusers.models.attention_processor import Attention

    options = {"transformer_options": {"patches_replace": {"attn1": {("middle", 0): lambda q, k, v, e: v}}}}
    replaced = _call(model, options)
    middle = model.unet.mid_block.attentions[0].transformer_blocks[0].attn1
    assert isinstance(middle, Attention)

    class Identity:
        def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, **kw):
            return attn.to_out[1](attn.to_out[0](attn.to_v(hidden_states)))

    saved = middle.processor
    middle.processor = Identity()
    try:
        expected = _call(model, {})
    finally:
        middle.processor = saved
    torch.testing.assert_close(replaced, expected, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(replaced, _call(model, {}))


def test_freeu_scales_the_backbone_and_filters_the_skip(model):
    patched = mu.FreeU().patch(model, 1.5, 2.0, 0.5, 0.25)[0]
    (patch,) = patched.model_options["transformer_options"]["patches"]["output_block_patch"]
    gen = torch.Generator().manual_seed(2)
    h, hsp = torch.randn(1, 64, 4, 4, generator=gen), torch.randn(1, 64, 4, 4, generator=gen)
    out_h, out_hsp = patch(h.clone(), hsp.clone(), {})
    # 64 channels = 2x the tiny UNet's 32 base channels: b2 and s2 apply.
    torch.testing.assert_close(out_h[:, :32], h[:, :32] * 2.0)
    torch.testing.assert_close(out_h[:, 32:], h[:, 32:])
    spectrum = torch.fft.fftshift(torch.fft.fft2(hsp), dim=(-2, -1))
    spectrum[..., 1:3, 1:3] *= 0.25
    torch.testing.assert_close(out_hsp, torch.fft.ifft2(torch.fft.ifftshift(spectrum, dim=(-2, -1))).real,
                               atol=1e-5, rtol=1e-5)
    other = torch.randn(1, 48, 4, 4, generator=gen)
    assert torch.equal(patch(other, other, {})[0], other)     # other widths untouched
    assert not torch.allclose(_call(patched, patched.model_options), _call(model, {}))
    v2 = mu.FreeU_V2().patch(model, 1.0, 1.0, 1.0, 1.0)[0]
    torch.testing.assert_close(_call(v2, v2.model_options), _call(model, {}), atol=1e-5, rtol=1e-5)


def test_attention_multiply_scales_the_projection_weights(model):
    from opencomfy.diffusion.memory import models_in_use

    patched = mu.UNetSelfAttentionMultiply().patch(model, 1.0, 2.0, 1.0, 0.5)[0]
    attn = model.unet.mid_block.attentions[0].transformer_blocks[0].attn1
    k, out = attn.to_k.weight.detach().clone(), attn.to_out[0].weight.detach().clone()
    q = attn.to_q.weight.detach().clone()
    with models_in_use(patched):
        torch.testing.assert_close(attn.to_k.weight, k * 2.0)
        torch.testing.assert_close(attn.to_out[0].weight, out * 0.5)
        torch.testing.assert_close(attn.to_q.weight, q)
    assert torch.equal(attn.to_k.weight, k)


def test_downscale_patch_runs_at_high_sigma_only(model):
    patched = mu.PatchModelAddDownscale().patch(model, 1, 2.0, 0.0, 0.5, True, "bicubic", "bicubic")[0]
    high = _call(patched, patched.model_options, sigma=float(model.schedule.sigma_max))
    assert torch.isfinite(high).all()
    assert not torch.allclose(high, _call(model, {}, sigma=float(model.schedule.sigma_max)))
    low = float(model.schedule.sigma_min)
    torch.testing.assert_close(_call(patched, patched.model_options, sigma=low), _call(model, {}, sigma=low),
                               atol=1e-5, rtol=1e-5)


# --- schedules ------------------------------------------------------------------------------

def test_sd3_and_aura_flow_schedules(model):
    sd3 = ms.ModelSamplingSD3().patch(model, 3.0)[0].schedule
    t = torch.arange(1, 1001) / 1000
    torch.testing.assert_close(sd3.sigmas, 3.0 * t / (1 + 2.0 * t))
    assert sd3.sigma_max == pytest.approx(1.0) and float(sd3.timestep(torch.tensor(0.5))) == 500.0
    assert sd3.percent_to_sigma(0.5) == pytest.approx(1.5 / 2.0)
    x, latent, noise = torch.ones(1), torch.full((1,), 2.0), torch.full((1,), 4.0)
    assert float(sd3.noise_scaling(torch.tensor([0.25]), noise, latent)) == pytest.approx(0.25 * 4 + 0.75 * 2)
    assert float(sd3.calculate_denoised(torch.tensor([0.5]), x * 2, x)) == pytest.approx(0.0)
    aura = ms.ModelSamplingAuraFlow().patch_aura(model, 1.73)[0].schedule
    assert float(aura.timestep(torch.tensor(0.5))) == 0.5
    assert model.schedule.prediction_type == "epsilon"      # the original keeps its schedule


def test_flux_and_ltxv_shift_from_size(model):
    flux = ms.ModelSamplingFlux().patch(model, 1.15, 0.5, 1024, 1024)[0].schedule
    mu_ = (1024 * 1024 / 256) * (0.65 / 3840) + (0.5 - 0.65 / 3840 * 256)
    assert flux.shift == pytest.approx(mu_)
    t = 0.3
    assert flux.percent_to_sigma(1 - t) == pytest.approx(math.exp(mu_) / (math.exp(mu_) + (1 / t - 1)))
    ltxv = ms.ModelSamplingLTXV().patch(model, 2.05, 0.95, {"samples": torch.zeros(1, 128, 8, 16, 16)})[0]
    assert ltxv.schedule.shift == pytest.approx(2048 * (1.1 / 3072) + 0.95 - 1.1 / 3072 * 1024)


def test_continuous_schedules_and_cascade(model):
    edm = ms.ModelSamplingContinuousEDM().patch(model, "edm", 80.0, 0.002)[0]
    s = edm.schedule
    assert s.sigma_min == pytest.approx(0.002) and s.sigma_max == pytest.approx(80.0, rel=1e-5)
    assert s.sigma_data == 0.5 and float(s.timestep(torch.tensor(math.e))) == pytest.approx(0.25)
    x, out, sig = torch.tensor([1.0]), torch.tensor([2.0]), torch.tensor([1.5])
    expected = 1.0 * 0.25 / (1.5 ** 2 + 0.25) + 2.0 * 1.5 * 0.5 / math.sqrt(1.5 ** 2 + 0.25)
    assert float(s.calculate_denoised(sig, out, x)) == pytest.approx(expected)
    play = ms.ModelSamplingContinuousEDM().patch(model, "edm_playground_v2.5", 80.0, 0.002)[0]
    latent = torch.randn(1, 4, 2, 2)
    torch.testing.assert_close(play.process_latent_out(play.process_latent_in(latent)), latent)
    v = ms.ModelSamplingContinuousV().patch(model, "v_prediction", 500.0, 0.03)[0].schedule
    assert float(v.timestep(torch.tensor(1.0))) == pytest.approx(0.5)
    cascade = ms.ModelSamplingStableCascade().patch(model, 2.0)[0].schedule
    assert len(cascade.sigmas) == 10000 and cascade.sigma_min < cascade.sigma_max
    with pytest.raises(ValueError, match="sigma_min"):
        ms.ModelSamplingContinuousEDM().patch(model, "eps", 0.001, 0.002)


def test_compute_dtype_casts_for_the_run_and_restores(model):
    from opencomfy.nodes.diffusion_conditioning import CLIPTextEncode  # noqa: F401 (import check)

    patched = ms.ModelComputeDtype().patch(model, "bf16")[0]
    weight = model.unet.conv_in.weight
    patched.patch_model()
    try:
        assert model.unet.conv_in.weight.dtype == torch.bfloat16
    finally:
        patched.unpatch_model()
    assert model.unet.conv_in.weight is weight and weight.dtype == torch.float32
    out = _call(patched, patched.model_options)
    assert torch.allclose(out, _call(model, {}), atol=0.5) and weight.dtype == torch.float32
    assert ms.ModelComputeDtype().patch(model, "default")[0].object_patches["manual_cast_dtype"] is None
