"""SDXL single-file checkpoints: layout, two text towers, pooled/size conditioning, and
equivalence with diffusers' StableDiffusionXLPipeline."""

from __future__ import annotations

import copy

import pytest
import torch

from opencomfy.diffusion.detect import bundled_config, detect_layout
from opencomfy.diffusion.loading import load_checkpoint_file, read_state_dict
from opencomfy.nodes.diffusion_sampling import common_ksampler
from opencomfy.nodes.diffusion_conditioning import CLIPTextEncode
from opencomfy.nodes.diffusion_loaders import CLIPSetLastLayer
from opencomfy.nodes.diffusion_vae import VAEDecode


@pytest.fixture(scope="module")
def sdxl_checkpoint(tmp_path_factory):
    from opencomfy.diffusion.random_checkpoint import write_sdxl_checkpoint

    path = tmp_path_factory.mktemp("sdxl") / "tiny_sdxl.safetensors"
    return path, write_sdxl_checkpoint(path, seed=0)


@pytest.fixture(scope="module")
def sdxl_models(sdxl_checkpoint):
    return load_checkpoint_file(str(sdxl_checkpoint[0]))


def test_sdxl_file_layout_and_detection(sdxl_checkpoint):
    state = read_state_dict(str(sdxl_checkpoint[0]))
    assert "conditioner.embedders.0.transformer.text_model.final_layer_norm.weight" in state
    assert "conditioner.embedders.1.model.transformer.resblocks.0.attn.in_proj_weight" in state
    assert "model.diffusion_model.label_emb.0.0.weight" in state
    layout = detect_layout({k: tuple(v.shape) for k, v in state.items()})
    unet = sdxl_checkpoint[1][0]
    assert layout.family == "sdxl"
    assert layout.unet["transformer_layers_per_block"] == [1, 2]
    assert layout.unet["addition_time_embed_dim"] == unet.config.addition_time_embed_dim
    assert layout.vae["scaling_factor"] == 0.13025


def test_sdxl_weights_load_exactly(sdxl_checkpoint, sdxl_models):
    unet, vae, clip_l, clip_g = sdxl_checkpoint[1]
    model, clip, autoencoder = sdxl_models
    pairs = ((unet, model.unet), (vae, autoencoder.autoencoder), (clip_l, clip.parts[0].model),
             (clip_g, clip.parts[1].model))
    for a, b in pairs:
        sa, sb = a.state_dict(), b.state_dict()
        if a in (clip_l, clip_g):       # text encoders are stored in fp16, as ComfyUI does
            sa = {k: v.half().float() if v.is_floating_point() else v for k, v in sa.items()}
        assert set(sa) == set(sb)
        assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_full_size_sdxl_config_from_shapes():
    from accelerate import init_empty_weights
    from diffusers import UNet2DConditionModel

    from opencomfy.diffusion.detect import unet_config
    from opencomfy.diffusion.ldm_keys import unet_to_ldm

    real = bundled_config("sdxl_unet")
    with init_empty_weights():
        unet = UNet2DConditionModel.from_config(real)
    shapes = {k: tuple(v.shape) for k, v in unet_to_ldm(unet.state_dict(), dict(unet.config)).items()}
    config = unet_config(shapes, "sdxl")
    for key in ("block_out_channels", "transformer_layers_per_block", "attention_head_dim",
                "down_block_types", "up_block_types", "cross_attention_dim",
                "projection_class_embeddings_input_dim", "addition_time_embed_dim",
                "use_linear_projection", "layers_per_block"):
        assert config[key] == real[key], key


def test_sdxl_text_encoding(sdxl_models):
    _, clip, _ = sdxl_models
    [[cond, options]] = CLIPTextEncode().encode(clip, "a photo of a cat")[0]
    assert cond.shape == (1, 77, 64)                       # CLIP-L 32 + OpenCLIP-G 32 features
    assert options["pooled_output"].shape == (1, 32)
    tokens = clip.tokenize("a cat")
    assert tokens["l"][0][3:5] == [(49407, 1.0), (49407, 1.0)]   # CLIP-L pads with the end token
    assert tokens["g"][0][3:5] == [(49407, 1.0), (0, 1.0)]       # OpenCLIP-G pads with "!" (0)
    ids = torch.tensor([[t for t, _ in tokens["g"][0]]])
    out = clip.parts[1].model(input_ids=ids, output_hidden_states=True)
    assert torch.allclose(clip.encode("a cat")[..., 32:], out.hidden_states[-2], atol=1e-6)
    skipped = CLIPSetLastLayer().set_last_layer(clip, -1)[0]
    assert torch.allclose(skipped.encode("a cat")[..., 32:], out.hidden_states[-1], atol=1e-6)


def test_sdxl_graph_matches_diffusers_pipeline(sdxl_models):
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline

    from opencomfy.diffusion.tokenizer import clip_tokenizer

    model, clip, vae = sdxl_models
    config = {k: v for k, v in bundled_config("sdxl_scheduler").items() if k != "_class_name"}
    config["timestep_spacing"] = "linspace"          # ComfyUI's "normal" scheduler
    tokenizer_g = copy.deepcopy(clip_tokenizer())
    tokenizer_g.pad_token = "!"
    pipe = StableDiffusionXLPipeline(vae=vae.autoencoder, text_encoder=clip.parts[0].model,
                                     text_encoder_2=clip.parts[1].model, tokenizer=clip.tokenizer,
                                     tokenizer_2=tokenizer_g, unet=model.unet,
                                     scheduler=EulerDiscreteScheduler.from_config(config))
    pipe.set_progress_bar_config(disable=True)
    theirs = pipe("a photo of a cat", negative_prompt="blurry", height=64, width=64, num_inference_steps=8,
                  guidance_scale=7.5, generator=torch.Generator().manual_seed(42),
                  output_type="pt").images.permute(0, 2, 3, 1)
    positive = CLIPTextEncode().encode(clip, "a photo of a cat")[0]
    negative = CLIPTextEncode().encode(clip, "blurry")[0]
    latent = common_ksampler(model, 42, 8, 7.5, "euler", "normal", positive, negative,
                             {"samples": torch.zeros(1, 4, 8, 8)})
    ours = VAEDecode().decode(vae, latent)[0]
    assert (ours - theirs).abs().max().item() < 3e-3
    # the size conditioning matters: another "original size" gives another image
    sized = [[t, {**o, "width": 1024, "height": 1024}] for t, o in positive]
    other = common_ksampler(model, 42, 8, 7.5, "euler", "normal", sized, negative,
                            {"samples": torch.zeros(1, 4, 8, 8)})
    assert not torch.allclose(other["samples"], latent["samples"], atol=1e-3)
