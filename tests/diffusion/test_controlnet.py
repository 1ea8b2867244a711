"""ControlNet: LDM-layout files, ControlNetApplyAdvanced, equivalence with diffusers'
StableDiffusionControlNetPipeline."""

from __future__ import annotations

import pytest
import torch

from opencomfy.compat import folder_paths
from opencomfy.nodes.diffusion_sampling import common_ksampler
from opencomfy.nodes.diffusion_conditioning import CLIPTextEncode
from opencomfy.nodes.diffusion_controlnet import ControlNetApply, ControlNetApplyAdvanced, ControlNetLoader
from opencomfy.nodes.diffusion_vae import VAEDecode


@pytest.fixture(scope="module")
def controlnet(tiny_models, tmp_path_factory):
    """A tiny ControlNet built from the tiny UNet, written in the LDM layout and loaded back."""
    from diffusers import ControlNetModel
    from safetensors.torch import save_file

    from opencomfy.diffusion.controlnet import controlnet_to_ldm

    torch.manual_seed(5)
    module = ControlNetModel.from_unet(tiny_models[0].unet, conditioning_channels=3)
    with torch.no_grad():      # the zero convolutions start at zero: give them weights
        for name, p in module.named_parameters():
            if "controlnet_down_blocks" in name or "controlnet_mid_block" in name or "conv_out" in name:
                p.normal_(0, 0.2)
    module.eval().requires_grad_(False)
    folder = tmp_path_factory.mktemp("controlnet")
    ldm = controlnet_to_ldm(module.state_dict(), dict(module.config))
    save_file({k: t.contiguous() for k, t in ldm.items()}, str(folder / "tiny_cn.safetensors"))
    return module, folder


@pytest.fixture
def loaded(controlnet, monkeypatch):
    monkeypatch.setitem(folder_paths.folder_names_and_paths, "controlnet",
                        ([str(controlnet[1])], folder_paths.supported_pt_extensions))
    folder_paths.filename_list_cache.pop("controlnet", None)
    yield ControlNetLoader().load_controlnet("tiny_cn.safetensors")[0]
    folder_paths.filename_list_cache.pop("controlnet", None)


def _conds(clip):
    return CLIPTextEncode().encode(clip, "a photo of a cat")[0], CLIPTextEncode().encode(clip, "blurry")[0]


def _sample(model, positive, negative):
    return common_ksampler(model, 42, 8, 7.5, "euler", "normal", positive, negative,
                           {"samples": torch.zeros(1, 4, 8, 8)})


def test_controlnet_file_loads_exactly(controlnet, loaded):
    assert loaded.family == "sd1"
    sa, sb = controlnet[0].state_dict(), loaded.model.state_dict()
    assert set(sa) == set(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_controlnet_matches_diffusers_pipeline(tiny_models, loaded):
    from diffusers import EulerDiscreteScheduler, StableDiffusionControlNetPipeline

    from opencomfy.diffusion.detect import bundled_config

    model, clip, vae = tiny_models
    config = {k: v for k, v in bundled_config("sd1_scheduler").items() if k != "_class_name"}
    pipe = StableDiffusionControlNetPipeline(
        vae=vae.autoencoder, text_encoder=clip.model, tokenizer=clip.tokenizer, unet=model.unet,
        controlnet=loaded.model, scheduler=EulerDiscreteScheduler.from_config(config), safety_checker=None,
        feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    hint = torch.rand(1, 64, 64, 3, generator=torch.Generator().manual_seed(3))
    theirs = pipe("a photo of a cat", image=hint.permute(0, 3, 1, 2), negative_prompt="blurry", height=64,
                  width=64, num_inference_steps=8, guidance_scale=7.5, controlnet_conditioning_scale=0.8,
                  generator=torch.Generator().manual_seed(42), output_type="pt").images.permute(0, 2, 3, 1)
    positive, negative = _conds(clip)
    controlled = ControlNetApplyAdvanced().apply_controlnet(positive, negative, loaded, hint, 0.8, 0.0, 1.0)
    ours = VAEDecode().decode(vae, _sample(model, *controlled))[0]
    assert (ours - theirs).abs().max().item() < 3e-3
    plain = VAEDecode().decode(vae, _sample(model, positive, negative))[0]
    assert (plain - theirs).abs().max().item() > 0.05     # the ControlNet made a difference
    assert "control" not in positive[0][1]                # inputs unchanged


def test_controlnet_strength_zero_and_empty_range_change_nothing(tiny_models, loaded):
    model, clip, _ = tiny_models
    positive, negative = _conds(clip)
    hint = torch.rand(1, 64, 64, 3)
    plain = _sample(model, positive, negative)["samples"]
    zero = ControlNetApplyAdvanced().apply_controlnet(positive, negative, loaded, hint, 0.0, 0.0, 1.0)
    assert zero == (positive, negative)
    never = ControlNetApplyAdvanced().apply_controlnet(positive, negative, loaded, hint, 1.0, 0.0, 0.0)
    assert torch.allclose(_sample(model, *never)["samples"], plain, atol=1e-5)
    (old,) = ControlNetApply().apply_controlnet(positive, loaded, hint, 1.0)
    assert not torch.allclose(_sample(model, old, negative)["samples"], plain, atol=1e-3)
