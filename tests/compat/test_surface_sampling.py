"""comfy.samplers / sample / sampler_helpers / k_diffusion / sd / controlnet / clip_vision called
directly, the ways packs call them, on a tiny SD 1.x checkpoint: each agrees with the core node
that does the same thing (the server test runs the common routes through a real server)."""

from __future__ import annotations

import pytest

from opencomfy.diffusion import available

if not available():
    pytest.skip("the diffusion extra is not installed", allow_module_level=True)

import torch  # noqa: E402

from opencomfy.compat import install  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def comfy_modules():
    install()
    import comfy.clip_vision
    import comfy.controlnet
    import comfy.k_diffusion.sampling
    import comfy.k_diffusion.utils
    import comfy.sample
    import comfy.sampler_helpers
    import comfy.samplers
    import comfy.sd

    return comfy


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    from opencomfy.diffusion.random_checkpoint import write_sd1_checkpoint

    path = tmp_path_factory.mktemp("surface-sampling") / "tiny.safetensors"
    write_sd1_checkpoint(path, "tiny", seed=0)
    return path


@pytest.fixture(scope="module")
def loaded(comfy_modules, ckpt):
    model, clip, vae, clip_vision = comfy_modules.sd.load_checkpoint_guess_config(str(ckpt))
    positive = [[clip.encode("a cat"), {}]]
    negative = [[clip.encode("blurry"), {}]]
    return model, clip, vae, clip_vision, positive, negative


def _core(model, positive, negative, sampler="euler", scheduler="normal", seed=3, denoise=1.0, latent=None,
          **advanced):
    from opencomfy.nodes.diffusion_sampling import common_ksampler

    latent = {"samples": torch.zeros(1, 4, 4, 4)} if latent is None else latent
    return common_ksampler(model, seed, 3, 5.0, sampler, scheduler, positive, negative, latent,
                           denoise=denoise, **advanced)["samples"]


def test_the_checkpoint_loads_as_the_loader_node_loads_it(comfy_modules, ckpt, loaded):
    from opencomfy.diffusion.loading import load_checkpoint_file

    model, clip, vae, clip_vision = loaded[:4]
    assert clip_vision is None
    assert isinstance(vae, comfy_modules.sd.VAE) and isinstance(clip, comfy_modules.sd.CLIP)
    assert not isinstance(object(), comfy_modules.sd.VAE)
    fresh = load_checkpoint_file(str(ckpt))[0]
    assert torch.equal(fresh.unet.conv_in.weight, model.unet.conv_in.weight)
    only = comfy_modules.sd.load_checkpoint_guess_config(str(ckpt), output_vae=False, output_clip=False)
    assert only[0] is model and only[1:] == (None, None, None)
    with pytest.raises(FileNotFoundError, match="nowhere.safetensors"):
        comfy_modules.sd.load_checkpoint_guess_config("nowhere.safetensors")


def test_vae_from_a_state_dict_decodes_like_the_loaded_one(comfy_modules, loaded):
    from opencomfy.diffusion.checkpoint_save import vae_state_dict

    vae = loaded[2]
    rebuilt = comfy_modules.sd.VAE(sd=vae_state_dict(vae))
    latent = torch.randn(1, 4, 4, 4, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(rebuilt.decode(latent), vae.decode(latent), atol=1e-5)


def test_diffusion_model_and_text_encoder_files_load(comfy_modules, loaded, tmp_path):
    from safetensors.torch import save_file

    from opencomfy.diffusion.checkpoint_save import clip_state_dict, unet_state_dict

    model, clip = loaded[0], loaded[1]
    unet_sd = unet_state_dict(model)
    save_file({k: v.contiguous() for k, v in unet_sd.items()}, str(tmp_path / "unet.safetensors"))
    for other in (comfy_modules.sd.load_diffusion_model(str(tmp_path / "unet.safetensors")),
                  comfy_modules.sd.load_diffusion_model_state_dict(unet_sd)):
        assert torch.equal(other.unet.conv_in.weight, model.unet.conv_in.weight)
    save_file({k: v.contiguous() for k, v in clip_state_dict(clip).items()}, str(tmp_path / "clip.safetensors"))
    text = comfy_modules.sd.load_clip([str(tmp_path / "clip.safetensors")])
    assert torch.allclose(text.encode("a cat"), clip.encode("a cat"), atol=1e-4)
    with pytest.raises(ValueError, match="FLUX"):
        comfy_modules.sd.load_clip([str(tmp_path / "clip.safetensors")], clip_type=comfy_modules.sd.CLIPType.FLUX)


def test_schedulers_match_the_ksampler_nodes_sigmas(comfy_modules, loaded):
    from opencomfy.diffusion.sigmas import ksampler_sigmas

    model = loaded[0]
    samplers = comfy_modules.samplers
    for scheduler in samplers.SCHEDULER_NAMES:
        for name in ("euler", "dpm_2", "uni_pc"):
            for denoise in (1.0, 0.6):
                ours = samplers.KSampler(model, 4, "cpu", name, scheduler, denoise=denoise).sigmas
                assert torch.equal(ours, ksampler_sigmas(model, scheduler, name, 4, denoise)), (scheduler, name)
    assert samplers.KSampler(model, 4, "cpu", "euler", "normal", denoise=0.0).sigmas.numel() == 0


def test_a_pack_registered_scheduler_is_used(comfy_modules, loaded):
    samplers = comfy_modules.samplers
    samplers.SCHEDULER_HANDLERS["pack_linear"] = samplers.SchedulerHandler(
        lambda n, sigma_min, sigma_max: torch.cat([torch.linspace(sigma_max, sigma_min, n), torch.zeros(1)]),
        use_ms=False)
    samplers.SCHEDULER_NAMES.append("pack_linear")
    try:
        sigmas = samplers.KSampler(loaded[0], 3, "cpu", "euler", "pack_linear").sigmas
        schedule = loaded[0].get_model_object("model_sampling")
        assert torch.allclose(sigmas, torch.tensor([schedule.sigma_max, (schedule.sigma_max + schedule.sigma_min) / 2,
                                                    schedule.sigma_min, 0.0]))
    finally:
        del samplers.SCHEDULER_HANDLERS["pack_linear"]
        samplers.SCHEDULER_NAMES.remove("pack_linear")
    with pytest.raises(ValueError, match="unknown scheduler"):
        samplers.calculate_sigmas(loaded[0].get_model_object("model_sampling"), "nope", 3)


def test_prepare_noise_is_comfyuis_draw_per_batch_index(comfy_modules):
    latent = torch.zeros(3, 4, 2, 2)
    whole = comfy_modules.sample.prepare_noise(latent, 7)
    assert torch.equal(whole, torch.randn(latent.shape, generator=torch.manual_seed(7)))
    picked = comfy_modules.sample.prepare_noise(torch.zeros(2, 4, 2, 2), 7, [2, 0])
    generator = torch.manual_seed(7)
    draws = [torch.randn(1, 4, 2, 2, generator=generator) for _ in range(3)]
    assert torch.equal(picked, torch.cat([draws[2], draws[0]]))


@pytest.mark.parametrize("sampler,scheduler,advanced", [
    ("euler_ancestral", "karras", {}),
    ("dpm_2", "normal", {"denoise": 0.7}),
    ("dpmpp_2m", "exponential", {"start_step": 1, "last_step": 2, "force_full_denoise": True}),
])
def test_comfy_sample_matches_ksampler(comfy_modules, loaded, sampler, scheduler, advanced):
    model, positive, negative = loaded[0], loaded[4], loaded[5]
    latent = torch.randn(1, 4, 4, 4, generator=torch.Generator().manual_seed(1))
    expected = _core(model, positive, negative, sampler, scheduler, latent={"samples": latent}, **advanced)
    noise = comfy_modules.sample.prepare_noise(latent, 3)
    got = comfy_modules.sample.sample(model, noise, 3, 5.0, sampler, scheduler, positive, negative, latent,
                                      seed=3, **advanced)
    assert torch.equal(got, expected)


def test_ksampler_start_past_the_end_returns_the_input(comfy_modules, loaded):
    model, positive, negative = loaded[0], loaded[4], loaded[5]
    latent = torch.ones(1, 4, 4, 4)
    sampler = comfy_modules.samplers.KSampler(model, 3, "cpu", "euler", "normal")
    assert sampler.sample(torch.zeros_like(latent), positive, negative, 5.0, latent_image=latent,
                          start_step=3) is latent


def test_sample_custom_with_converted_conds_and_helpers(comfy_modules, loaded):
    model, positive, negative = loaded[0], loaded[4], loaded[5]
    helpers, samplers = comfy_modules.sampler_helpers, comfy_modules.samplers
    latent = torch.zeros(1, 4, 4, 4)
    sigmas = samplers.KSampler(model, 3, "cpu", "heun", "simple").sigmas
    noise = comfy_modules.sample.prepare_noise(latent, 3)
    converted = helpers.convert_cond(positive), helpers.convert_cond(negative)
    assert converted[0][0]["cross_attn"] is positive[0][0] and "uuid" in converted[0][0]
    got = samplers.sample(model, noise, *converted, 5.0, "cpu", samplers.sampler_object("heun"), sigmas,
                          latent_image=latent, seed=3)
    assert torch.equal(got, _core(model, positive, negative, "heun", "simple"))
    assert helpers.get_additional_models({"positive": converted[0]}, torch.float32) == ([], 0)
    real_model, conds, models = helpers.prepare_sampling(model, noise.shape, {"positive": positive})
    assert real_model is model and models == []
    helpers.cleanup_models(conds, models)
    mask = helpers.prepare_mask(torch.ones(16, 16), (2, 4, 4, 4), "cpu")
    assert mask.shape == (2, 4, 4, 4) and torch.all(mask == 1)
    assert helpers.estimate_memory(model, noise.shape, conds)[0] > 0


def test_a_guider_subclass_with_calc_cond_batch(comfy_modules, loaded):
    model, positive, negative = loaded[0], loaded[4], loaded[5]
    samplers = comfy_modules.samplers

    class Guider(samplers.CFGGuider):
        def predict_noise(self, x, timestep, model_options={}, seed=None):  # noqa: B006
            cond, uncond = samplers.calc_cond_batch(self.inner_model, [self.conds["positive"], self.conds["negative"]],
                                                    x, timestep, model_options)
            return samplers.cfg_function(self.inner_model, cond, uncond, self.cfg, x, timestep, model_options)

    guider = Guider(model)
    guider.set_conds(positive, negative)
    guider.set_cfg(5.0)
    latent = torch.zeros(1, 4, 4, 4)
    sigmas = samplers.KSampler(model, 3, "cpu", "euler", "normal").sigmas
    got = guider.sample(comfy_modules.sample.prepare_noise(latent, 3), latent, samplers.sampler_object("euler"),
                        sigmas, seed=3)
    assert torch.allclose(got, _core(model, positive, negative), atol=1e-5)
    resolved = samplers.process_conds(model, latent, {"positive": positive}, "cpu")
    assert len(resolved["positive"]) == 1


def test_k_diffusion_modules(comfy_modules, tmp_path):
    from PIL import Image

    sampling, utils = comfy_modules.k_diffusion.sampling, comfy_modules.k_diffusion.utils
    assert sampling.torch is torch and callable(sampling.sample_dpmpp_2m_sde)
    assert sampling.replaced_by_pack("euler") is None
    x, denoised = torch.ones(2), torch.zeros(2)
    assert torch.equal(sampling.to_d(x, 2.0, denoised), x / 2)
    assert torch.allclose(sampling.get_sigmas_karras(3, 0.1, 10.0)[[0, -1]], torch.tensor([10.0, 0.0]))
    Image.new("RGB", (4, 4)).save(tmp_path / "a.png")
    (tmp_path / "notes.txt").write_text("x")
    folder = utils.FolderOfImages(tmp_path)
    assert len(folder) == 1 and folder[0][0].size == (4, 4) and ".webp" in folder.IMG_EXTENSIONS
    assert utils.append_dims(torch.ones(2), 4).shape == (2, 1, 1, 1)


def test_ksampler_x0_inpaint_holds_the_unmasked_region(comfy_modules, loaded):
    calls = []

    def denoiser(x, sigma, model_options=None):
        calls.append(sigma)
        return torch.zeros_like(x)

    wrapped = comfy_modules.samplers.KSamplerX0Inpaint(denoiser, torch.tensor([1.0, 0.0]))
    wrapped.latent_image, wrapped.noise = torch.full((1, 1, 2, 2), 3.0), torch.ones(1, 1, 2, 2)
    mask = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
    out = wrapped(torch.zeros(1, 1, 2, 2), torch.tensor([0.5]), mask)
    assert calls == [0.5] and out[0, 0, 0, 0] == 0 and torch.all(out[0, 0, 1] == 3.0)


def test_internals_we_do_not_share_fail_by_name(comfy_modules):
    from opencomfy.compat.model_placeholders import ModelBackendUnavailable

    with pytest.raises(ModelBackendUnavailable, match="comfy.samplers.get_area_and_mult"):
        comfy_modules.samplers.get_area_and_mult({}, None, None)
    with pytest.raises(ModelBackendUnavailable, match="comfy.sd.CLIP"):
        comfy_modules.sd.CLIP()


@pytest.fixture(scope="module")
def controlnet_file(loaded, tmp_path_factory):
    from diffusers import ControlNetModel
    from safetensors.torch import save_file

    from opencomfy.diffusion.controlnet import controlnet_to_ldm

    torch.manual_seed(5)
    module = ControlNetModel.from_unet(loaded[0].unet, conditioning_channels=3)
    with torch.no_grad():      # the zero convolutions start at zero: give them weights
        for name, p in module.named_parameters():
            if "controlnet_down_blocks" in name or "controlnet_mid_block" in name:
                p.normal_(0, 0.2)
    path = tmp_path_factory.mktemp("cn") / "tiny_cn.safetensors"
    ldm = controlnet_to_ldm(module.state_dict(), dict(module.config))
    save_file({k: t.contiguous() for k, t in ldm.items()}, str(path))
    return path


def test_a_controlnet_chain_built_by_hand_matches_the_core_apply_node(comfy_modules, loaded, controlnet_file):
    from opencomfy.diffusion.controlnet import load_controlnet_file
    from opencomfy.nodes.diffusion_controlnet import ControlNetApplyAdvanced

    model, positive, negative = loaded[0], loaded[4], loaded[5]
    cn = comfy_modules.controlnet
    control = cn.load_controlnet(str(controlnet_file))
    assert isinstance(control, cn.ControlNet) and isinstance(load_controlnet_file(str(controlnet_file)), cn.ControlNet)
    image = torch.rand(1, 32, 32, 3, generator=torch.Generator().manual_seed(2))
    core_pos, core_neg = ControlNetApplyAdvanced().apply_controlnet(positive, negative, control, image, 0.8, 0.0, 1.0)[:2]
    expected = _core(model, core_pos, core_neg)

    def by_hand(conditioning, previous=None):
        out = []
        for tensor, options in conditioning:
            c_net = control.copy().set_cond_hint(image.movedim(-1, 1), 0.8, (0.0, 1.0))
            c_net.set_previous_controlnet(previous)
            out.append([tensor, {**options, "control": c_net, "control_apply_to_uncond": False}])
        return out

    got = _core(model, by_hand(positive), by_hand(negative))
    assert torch.allclose(got, expected, atol=1e-5)
    assert not torch.allclose(got, _core(model, positive, negative), atol=1e-3)
    pos = by_hand(positive)
    assert comfy_modules.sampler_helpers.get_additional_models({"positive": pos})[0] == [pos[0][1]["control"]]


def test_clip_vision_loads_like_the_loader_node(comfy_modules, tmp_path):
    from safetensors.torch import save_file
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(0)
    tower = CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=64, intermediate_size=128, num_attention_heads=2, num_hidden_layers=2, patch_size=8,
        image_size=32, projection_dim=16, hidden_act="quick_gelu")).eval()
    save_file({k: v.contiguous() for k, v in tower.state_dict().items()}, str(tmp_path / "cv.safetensors"))
    cv = comfy_modules.clip_vision
    model = cv.load(str(tmp_path / "cv.safetensors"))
    assert isinstance(model, cv.ClipVisionModel)
    image = torch.rand(1, 40, 40, 3, generator=torch.Generator().manual_seed(0))
    out = model.encode_image(image)
    assert isinstance(out, cv.Output) and out["image_embeds"].shape == (1, 16)
    assert cv.clip_preprocess(image, size=32).shape == (1, 3, 32, 32)
    again = cv.load_clipvision_from_sd({"x." + k: v for k, v in tower.state_dict().items()}, prefix="x.")
    assert torch.allclose(again.encode_image(image)["image_embeds"], out["image_embeds"], atol=1e-4)
