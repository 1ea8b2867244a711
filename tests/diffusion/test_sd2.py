"""SD 2.x single-file checkpoints: OpenCLIP-H, penultimate layer, v-prediction, and
equivalence with diffusers' pipeline in its own SD 2.x layout (a 23-of-24-layer encoder)."""

from __future__ import annotations

import copy

import pytest
import torch

from opencomfy.diffusion.detect import bundled_config
from opencomfy.diffusion.loading import load_checkpoint_file
from opencomfy.nodes.diffusion_sampling import common_ksampler
from opencomfy.nodes.diffusion_conditioning import CLIPTextEncode
from opencomfy.nodes.diffusion_model_advanced import ModelSamplingDiscrete
from opencomfy.nodes.diffusion_vae import VAEDecode


@pytest.fixture(scope="module")
def sd2(tmp_path_factory):
    from opencomfy.diffusion.random_checkpoint import write_sd2_checkpoint

    folder = tmp_path_factory.mktemp("sd2")
    v_path, eps_path = folder / "tiny_sd2_v.safetensors", folder / "tiny_sd2.safetensors"
    modules = write_sd2_checkpoint(v_path, seed=0, v_prediction=True)
    write_sd2_checkpoint(eps_path, seed=0)
    return load_checkpoint_file(str(v_path)), load_checkpoint_file(str(eps_path)), modules


def _diffusers_text_encoder(ours):
    """diffusers' SD 2.x convention: drop the last layer and use the final norm's output."""
    from transformers import CLIPTextModel

    config = copy.deepcopy(ours.config)
    config.num_hidden_layers -= 1
    model = CLIPTextModel(config).eval()
    state = {k.removeprefix("text_model."): v for k, v in ours.state_dict().items()
             if not k.startswith("text_projection") and f"layers.{config.num_hidden_layers}." not in k}
    model.load_state_dict(state)
    return model


def test_sd2_loads_exactly_and_detects_v_prediction(sd2):
    (v_model, v_clip, v_vae), (eps_model, _, _), (unet, vae, clip_h) = sd2
    assert v_model.family == "sd2" and v_model.schedule.prediction_type == "v_prediction"
    assert eps_model.schedule.prediction_type == "epsilon"
    for a, b in ((unet, v_model.unet), (vae, v_vae.autoencoder), (clip_h, v_clip.parts[0].model)):
        sa, sb = a.state_dict(), b.state_dict()
        if a is clip_h:                 # text encoders are stored in fp16, as ComfyUI does
            sa = {k: v.half().float() if v.is_floating_point() else v for k, v in sa.items()}
        assert set(sa) == set(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert v_clip.tokenize("a cat")["h"][0][3:5] == [(49407, 1.0), (0, 1.0)]


def test_sd2_v_prediction_matches_diffusers_pipeline(sd2):
    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline

    from opencomfy.diffusion.tokenizer import clip_tokenizer

    model, clip, vae = sd2[0]
    config = {k: v for k, v in bundled_config("sd2_scheduler").items() if k != "_class_name"}
    config["prediction_type"] = "v_prediction"
    tokenizer = copy.deepcopy(clip_tokenizer())
    tokenizer.pad_token = "!"
    pipe = StableDiffusionPipeline(vae=vae.autoencoder, text_encoder=_diffusers_text_encoder(clip.parts[0].model),
                                   tokenizer=tokenizer, unet=model.unet,
                                   scheduler=EulerDiscreteScheduler.from_config(config), safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    theirs = pipe("a photo of a cat", negative_prompt="blurry", height=64, width=64, num_inference_steps=8,
                  guidance_scale=7.5, generator=torch.Generator().manual_seed(42),
                  output_type="pt").images.permute(0, 2, 3, 1)
    positive = CLIPTextEncode().encode(clip, "a photo of a cat")[0]
    negative = CLIPTextEncode().encode(clip, "blurry")[0]
    latent = common_ksampler(model, 42, 8, 7.5, "euler", "normal", positive, negative,
                             {"samples": torch.zeros(1, 4, 8, 8)})
    ours = VAEDecode().decode(vae, latent)[0]
    assert (ours - theirs).abs().max().item() < 5e-3
    # the same weights read as epsilon give another image
    eps = ModelSamplingDiscrete().patch(model, "eps", False)[0]
    assert model.schedule.prediction_type == "v_prediction"
    other = common_ksampler(eps, 42, 8, 7.5, "euler", "normal", positive, negative,
                            {"samples": torch.zeros(1, 4, 8, 8)})
    assert not torch.allclose(other["samples"], latent["samples"], atol=1e-2)


def test_model_sampling_discrete_v_and_zsnr(sd2):
    model = sd2[1][0]
    v = ModelSamplingDiscrete().patch(model, "v_prediction", True)[0]
    assert v.schedule.prediction_type == "v_prediction" and v.schedule.zsnr
    assert v.schedule.sigma_max > 1000          # zero terminal SNR: the last sigma is huge
    assert v.schedule.sigma_min == pytest.approx(model.schedule.sigma_min, rel=1e-4)
    x, sigma, out = torch.randn(1, 4, 2, 2), torch.tensor([2.0]), torch.randn(1, 4, 2, 2)
    assert torch.allclose(v.schedule.denoised(x, sigma, out), x / 5 - out * 2 / 5 ** 0.5)
    with pytest.raises(ValueError):
        ModelSamplingDiscrete().patch(model, "lcm", False)
