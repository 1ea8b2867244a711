"""The ComfyUI modules custom node packs use, called the way packs call them: results checked
against our engine's own pieces or against values worked out by hand."""

from __future__ import annotations

import importlib

import pytest
import torch


@pytest.fixture(scope="module", autouse=True)
def compat_installed():
    from opencomfy.compat import install

    install()


def test_comfyuis_dependency_set_imports():
    for name in ("einops", "scipy", "torchsde", "kornia", "spandrel", "sentencepiece", "tokenizers", "tqdm",
                 "torchvision", "psutil", "aiohttp", "yaml", "PIL", "safetensors", "transformers", "av",
                 "alembic", "sqlalchemy", "soundfile", "pydantic_settings"):
        importlib.import_module(name)


def test_tiling_matches_the_upscale_node_and_works_in_three_dimensions():
    import comfy.utils

    from opencomfy.diffusion.upscale import tiled_scale as node_tiling

    image = torch.rand(2, 3, 20, 26)
    double = lambda t: torch.nn.functional.interpolate(t, scale_factor=2, mode="nearest")  # noqa: E731
    ours = comfy.utils.tiled_scale(image, double, tile_x=8, tile_y=8, overlap=2, upscale_amount=2)
    assert torch.allclose(ours, node_tiling(image, double, tile_x=8, tile_y=8, overlap=2, upscale_amount=2))
    assert torch.allclose(ours, double(image), atol=1e-6)
    assert comfy.utils.get_tiled_scale_steps(26, 20, 8, 8, 2) == 4 * 3

    video = torch.rand(1, 2, 9, 12, 12)
    seen = []
    out = comfy.utils.tiled_scale_multidim(video, lambda t: t * 3, tile=(4, 6, 6), overlap=(1, 2, 2),
                                           upscale_amount=1, out_channels=2,
                                           pbar=type("Bar", (), {"update": lambda self, n: seen.append(n)})())
    assert torch.allclose(out, video * 3, atol=1e-6) and len(seen) == 3 * 3 * 3


def test_utils_state_dict_helpers():
    import comfy.utils

    sd = {"a.w": torch.ones(2, dtype=torch.float16), "a.b": torch.ones(8), "c": torch.ones(1)}
    assert comfy.utils.weight_dtype(sd) == torch.float32
    assert comfy.utils.calculate_parameters(sd, "a.") == 10
    comfy.utils.state_dict_key_replace(sd, {"c": "d"})
    assert "d" in sd and "c" not in sd
    layer = torch.nn.Linear(2, 2)
    comfy.utils.copy_to_param(layer, "weight", torch.zeros(2, 2))
    assert float(layer.weight.detach().abs().sum()) == 0
    assert comfy.utils.string_to_seed("opencomfy") == __import__("zlib").crc32(b"opencomfy")
    assert comfy.utils.reshape_mask(torch.ones(1, 4, 4), (3, 2, 8, 8)).shape == (3, 2, 8, 8)
    assert comfy.utils.common_upscale(torch.rand(1, 3, 4, 4), 8, 6, "bicubic", "center").shape == (1, 3, 6, 8)


def test_model_management_surface():
    import comfy.model_management as mm

    cpu = torch.device("cpu")
    x = torch.ones(3)
    assert mm.cast_to(x, None, cpu) is x
    assert mm.cast_to(x, torch.float16, cpu).dtype == torch.float16
    assert mm.cast_to(x, copy=True) is not x
    assert mm.cast_to_device(x, cpu, torch.bfloat16).dtype == torch.bfloat16
    assert mm.get_torch_device() == cpu and mm.intermediate_device() == cpu
    assert mm.get_free_memory(cpu) > 0 and mm.get_total_memory(cpu) >= mm.get_free_memory(cpu)
    assert mm.is_device_cpu(cpu) and not mm.is_device_cuda(cpu) and not mm.is_device_mps(cpu)
    assert mm.vram_state == mm.VRAMState.DISABLED and mm.cpu_state == mm.CPUState.CPU
    assert mm.unet_manual_cast(torch.float16, cpu) == torch.float32
    assert mm.dtype_size(torch.bfloat16) == 2 and torch.float8_e4m3fn in mm.get_supported_float8_types()
    assert mm.interrupt_processing is False
    assert issubclass(mm.InterruptProcessingException, Exception)
    for name in ("load_models_gpu", "load_model_gpu", "soft_empty_cache", "free_memory", "unload_all_models",
                 "cleanup_models", "module_size", "device_supports_non_blocking", "xformers_enabled",
                 "pytorch_attention_enabled", "should_use_fp16", "should_use_bf16", "unet_dtype", "vae_dtype",
                 "text_encoder_dtype", "unet_offload_device", "text_encoder_device", "vae_device",
                 "get_autocast_device", "supports_cast", "pick_weight_dtype", "LoadedModel", "loaded_models"):
        assert callable(getattr(mm, name)), name
    mm.load_models_gpu([torch.nn.Linear(1, 1)])


def test_latent_formats_carry_the_published_numbers():
    import comfy.latent_formats as lf

    sdxl = lf.SDXL()
    assert sdxl.scale_factor == 0.13025 and sdxl.latent_rgb_factors[0] == [0.3651, 0.4232, 0.4341]
    assert sdxl.latent_rgb_factors_bias == [0.1084, -0.0175, -0.0011]
    sdxl.latent_rgb_factors[0][0] = 9  # each instance owns its lists
    assert lf.SDXL().latent_rgb_factors[0][0] == 0.3651
    assert lf.SD15().taesd_decoder_name == "taesd_decoder" and lf.SD15(0.5).scale_factor == 0.5
    flux = lf.Flux()
    assert (flux.scale_factor, flux.shift_factor, flux.latent_channels) == (0.3611, 0.1159, 16)
    latent = torch.randn(1, 16, 4, 4)
    assert torch.allclose(flux.process_in(latent), (latent - 0.1159) * 0.3611)
    for cls, channels, dims in ((lf.SD3, 16, 2), (lf.LTXV, 128, 3), (lf.Wan21, 16, 3), (lf.Wan22, 48, 3),
                                (lf.HunyuanVideo, 16, 3), (lf.Mochi, 12, 3), (lf.Cosmos1CV8x8x8, 16, 3),
                                (lf.SC_Prior, 16, 2), (lf.SC_B, 4, 2), (lf.SDXL_Playground_2_5, 4, 2)):
        fmt = cls()
        assert (fmt.latent_channels, fmt.latent_dimensions) == (channels, dims), cls
        assert len(fmt.latent_rgb_factors) == channels and all(len(row) == 3 for row in fmt.latent_rgb_factors)
        x = torch.randn((1, channels) + (2,) * dims)
        assert torch.allclose(fmt.process_out(fmt.process_in(x)), x, atol=1e-5), cls
    assert (lf.Hunyuan3Dv2.latent_channels, lf.ACEAudio.latent_channels, lf.StableAudio1.latent_dimensions) == (64, 8, 1)
    assert len(lf.Flux2().latent_rgb_factors) == 32  # its 128 channels are 2x2 patches of 32


def test_model_sampling_classes_combine_like_comfyuis():
    import comfy.model_sampling as ms

    from opencomfy.diffusion.model_sampling import DiscreteSchedule

    class Discrete(ms.ModelSamplingDiscrete, ms.EPS):
        pass

    sampling, reference = Discrete(), DiscreteSchedule()
    assert torch.equal(sampling.sigmas, reference.sigmas)
    assert sampling.percent_to_sigma(0.3) == pytest.approx(reference.percent_to_sigma(0.3))
    assert int(sampling.timestep(torch.tensor([1.0]))[0]) == int(reference.timestep_of(1.0))
    x, eps = torch.randn(1, 4, 2, 2), torch.randn(1, 4, 2, 2)
    assert torch.allclose(sampling.calculate_denoised(torch.tensor([2.0]), eps, x), x - 2.0 * eps)

    class Flow(ms.ModelSamplingDiscreteFlow, ms.CONST):
        pass

    flow = Flow(shift=3.0)
    assert flow.percent_to_sigma(0.5) == pytest.approx(ms.time_snr_shift(3.0, 0.5)) == pytest.approx(0.75)
    noisy = flow.noise_scaling(torch.tensor([0.25]), eps, x)
    assert torch.allclose(noisy, 0.25 * eps + 0.75 * x)
    assert ms.flux_time_shift(0.0, 1.0, 0.5) == pytest.approx(0.5)
    zsnr = ms.ModelSamplingDiscrete(zsnr=True)
    assert float(zsnr.sigmas[-1]) > 4000  # zero terminal SNR, kept finite

    class Lcm(ms.ModelSamplingDiscreteDistilled, ms.LCM):
        pass

    lcm = Lcm()
    assert lcm.sigmas.shape == (50,) and lcm.timestep(lcm.sigmas[:2]).tolist() == [19, 39]


def test_cli_args_have_every_comfyui_flag():
    from comfy.cli_args import LatentPreviewMethod, PerformanceFeature, args, enables_dynamic_vram

    for name in ("listen", "port", "preview_method", "cache_ram", "fast", "disable_smart_memory", "offline",
                 "enable_manager", "disable_assets", "feature_flag", "models_directory", "fp8_e8m0fnu_unet",
                 "use_sage_attention", "reserve_vram", "async_offload", "disable_pinned_memory"):
        assert hasattr(args, name), name
    assert LatentPreviewMethod.from_string("latent2rgb") is LatentPreviewMethod.Latent2RGB
    assert LatentPreviewMethod.from_string("nope") is None
    assert PerformanceFeature("autotune") is PerformanceFeature.AutoTune and enables_dynamic_vram() is False


def test_latent_preview_previewers():
    import comfy.latent_formats
    import latent_preview

    fmt = comfy.latent_formats.SDXL()
    previewer = latent_preview.Latent2RGBPreviewer(fmt.latent_rgb_factors, fmt.latent_rgb_factors_bias)
    kind, image, size = previewer.decode_latent_to_preview_image("JPEG", torch.zeros(2, 4, 5, 7))
    assert kind == "JPEG" and image.size == (7, 5) and size == latent_preview.MAX_PREVIEW_RESOLUTION
    # A zero latent previews as the bias alone (mapped from -1..1 to 0..255).
    expected = [round((b + 1) / 2 * 255) for b in fmt.latent_rgb_factors_bias]
    assert list(image.getpixel((0, 0))) == pytest.approx(expected, abs=1)
    video = latent_preview.Latent2RGBPreviewer(comfy.latent_formats.Wan21().latent_rgb_factors)
    assert video.decode_latent_to_preview(torch.zeros(1, 16, 3, 4, 4)).size == (4, 4)

    assert latent_preview.get_previewer("cpu", fmt) is None  # previews are off by default
    latent_preview.set_preview_method("latent2rgb")
    try:
        assert isinstance(latent_preview.get_previewer("cpu", fmt), latent_preview.Latent2RGBPreviewer)
        latent_preview.set_preview_method(latent_preview.LatentPreviewMethod.TAESD)  # no decoder file
        assert isinstance(latent_preview.get_previewer("cpu", fmt), latent_preview.Latent2RGBPreviewer)
    finally:
        latent_preview.set_preview_method(None)
    taesd = latent_preview.TAESDPreviewerImpl(latent_preview.TAESD())
    assert taesd.decode_latent_to_preview(torch.randn(1, 4, 2, 3)).size == (24, 16)


def test_taesd_loads_published_layout_files(tmp_path):
    from comfy.taesd.taesd import TAESD, Decoder
    from safetensors.torch import save_file

    decoder = Decoder(4)
    save_file(decoder.state_dict(), str(tmp_path / "taesd_decoder.safetensors"))
    model = TAESD(decoder_path=tmp_path / "taesd_decoder.safetensors")
    latent = torch.randn(1, 4, 2, 2)
    with torch.no_grad():
        assert torch.allclose(model.decode(latent), decoder(latent) * 2 - 1)


def test_diffusers_convert_renames_like_our_checkpoint_writer():
    from comfy import diffusers_convert
    from diffusers import AutoencoderKL, UNet2DConditionModel

    from opencomfy.diffusion import ldm_keys

    unet = UNet2DConditionModel(block_out_channels=(8, 16), layers_per_block=1, cross_attention_dim=8,
                                attention_head_dim=2, norm_num_groups=4, sample_size=8,
                                down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"))
    sd = unet.state_dict()
    expected = {k[len(ldm_keys.UNET_PREFIX):]: v for k, v in ldm_keys.unet_to_ldm(sd, unet.config).items()}
    assert diffusers_convert.convert_unet_state_dict(sd).keys() == expected.keys()

    vae = AutoencoderKL(block_out_channels=(8, 16), norm_num_groups=4, latent_channels=4,
                        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2)
    converted = diffusers_convert.convert_vae_state_dict(vae.state_dict())
    assert converted["encoder.mid.attn_1.q.weight"].shape == (16, 16, 1, 1)
    assert "decoder.up.1.block.0.conv1.weight" in converted and "encoder.down.0.block.0.norm1.weight" in converted


def test_ops_layers_skip_init_and_cast():
    import comfy.ops

    layer = comfy.ops.disable_weight_init.Linear(3, 2)
    assert isinstance(layer, torch.nn.Linear)
    torch.nn.init.ones_(layer.weight)
    torch.nn.init.zeros_(layer.bias)
    assert torch.equal(layer(torch.ones(1, 3)), torch.full((1, 2), 3.0))
    cast = comfy.ops.manual_cast.Conv2d(2, 2, 1, bias=False).to(torch.bfloat16)
    out = cast(torch.ones(1, 2, 2, 2))
    assert out.dtype == torch.float32
    assert comfy.ops.pick_operations(torch.float16, torch.float32) is comfy.ops.manual_cast
    assert comfy.ops.pick_operations(torch.float32, None) is comfy.ops.disable_weight_init
    assert isinstance(comfy.ops.disable_weight_init.conv_nd(3, 1, 1, 1), torch.nn.Conv3d)


def test_lora_keys_and_patches():
    import comfy.lora

    class Base(torch.nn.Module):  # a model already in ComfyUI's layout
        def __init__(self):
            super().__init__()
            self.diffusion_model = torch.nn.Sequential(torch.nn.Linear(2, 2))

    key_map = comfy.lora.model_lora_keys_unet(Base(), {})
    assert key_map["lora_unet_0"] == "diffusion_model.0.weight"
    lora = {"lora_unet_0.lora_up.weight": torch.ones(2, 1), "lora_unet_0.lora_down.weight": torch.ones(1, 2),
            "lora_unet_0.alpha": torch.tensor(0.5), "lora_unet_0.diff_b": torch.ones(2)}
    patches = comfy.lora.load_lora(lora, key_map, log_missing=False)
    kind, (up, down, alpha, *_rest) = patches["diffusion_model.0.weight"]
    assert kind == "lora" and alpha == 0.5 and up.shape == (2, 1)
    assert patches["diffusion_model.0.bias"][0] == "diff"
    clip_map = comfy.lora.model_lora_keys_clip(torch.nn.Sequential(torch.nn.Linear(1, 1)), {})
    assert clip_map == {"lora_te_0": "0.weight"}


def test_feature_flags_and_torch_compile():
    from comfy_api import feature_flags
    from comfy_api.torch_helpers import set_torch_compile_wrapper

    assert feature_flags.get_server_features()["supports_preview_metadata"] is True
    meta = {"sid": {"feature_flags": {"supports_preview_metadata": True}}}
    assert feature_flags.supports_feature(meta, "sid", "supports_preview_metadata")
    assert feature_flags.get_connection_feature(meta, "other", "x", "d") == "d"

    from opencomfy.diffusion.model_patcher import ModelPatcher

    class Base(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.diffusion_model = torch.nn.Linear(2, 2)

    patcher = ModelPatcher(Base())
    set_torch_compile_wrapper(patcher, backend="eager")
    compiled = patcher.get_model_object("diffusion_model")
    x = torch.randn(1, 2)
    assert compiled is not patcher.model.diffusion_model and torch.allclose(compiled(x), patcher.model.diffusion_model(x))
    with pytest.raises(TypeError, match="ModelPatcher"):
        set_torch_compile_wrapper(object(), backend="eager")


def test_placeholders_behave_like_the_real_names_until_used():
    import comfy.k_diffusion.utils
    import comfy.ldm.modules.diffusionmodules.model as ldm_model
    from comfy.model_base import ModelType

    from opencomfy.compat.model_placeholders import ModelBackendUnavailable

    assert ".png" in comfy.k_diffusion.utils.FolderOfImages.IMG_EXTENSIONS
    assert ModelType.FLOW.name == "FLOW" and ModelType.FLOW is ModelType["FLOW"]
    assert ldm_model.ResnetBlock.some_constant is ldm_model.ResnetBlock.some_constant
    assert list(ldm_model.ResnetBlock.SOME_LIST) == [] and "x" not in ldm_model.ResnetBlock.SOME_LIST

    class Mine(ldm_model.ResnetBlock):
        OUTPUT_NODE = True

    assert getattr(Mine, "DEPRECATED", False) is False and Mine.OUTPUT_NODE is True
    assert not isinstance(object(), ldm_model.ResnetBlock)
    with pytest.raises(ModelBackendUnavailable, match="ResnetBlock"):
        Mine()


def test_importing_a_known_value_as_a_module_fails_and_keeps_the_value():
    """`import comfy.model_base.ModelType.FLOW` (as a surface scan tries) must not turn the enum
    into a placeholder module on its parent: it fails, as in ComfyUI, and the enum stays."""
    import importlib

    import comfy.model_base

    from opencomfy.compat.model_placeholders import ModelType

    for name in ("comfy.model_base.ModelType", "comfy.model_base.ModelType.FLOW"):
        with pytest.raises(ModuleNotFoundError):
            importlib.import_module(name)
    assert comfy.model_base.ModelType is ModelType and ModelType.FLOW.name == "FLOW"


def test_comfy_extras_modules_follow_comfyuis_layout():
    from comfy_extras.catalogue import COMFY_EXTRAS_CLASSES

    from opencomfy.compat.model_placeholders import ModelBackendUnavailable, is_placeholder

    for module_name, classes in COMFY_EXTRAS_CLASSES.items():
        module = importlib.import_module(module_name)
        for name in classes:
            assert name.isidentifier() is False or hasattr(module, name), (module_name, name)
    from comfy_extras.nodes_custom_sampler import Noise_EmptyNoise, SamplerCustomAdvanced
    from comfy_extras.nodes_lt import get_noise_mask
    from comfy_extras.nodes_mask import composite

    assert SamplerCustomAdvanced.FUNCTION and callable(composite)
    assert torch.equal(Noise_EmptyNoise().generate_noise({"samples": torch.ones(1, 4, 2, 2)}), torch.zeros(1, 4, 2, 2))
    mask = get_noise_mask({"samples": torch.zeros(2, 128, 3, 4, 4)})
    assert mask.shape == (2, 1, 3, 1, 1) and float(mask.min()) == 1.0
    existing = torch.rand(2, 1, 3, 1, 1)
    assert torch.equal(get_noise_mask({"samples": torch.zeros(2, 1, 3, 1, 1), "noise_mask": existing}), existing)
    missing = [(m, n) for m, names in COMFY_EXTRAS_CLASSES.items() for n in names
               if n.isidentifier() and is_placeholder(getattr(importlib.import_module(m), n))]
    if missing:
        module_name, name = missing[0]
        with pytest.raises(ModelBackendUnavailable, match="does not provide this node yet"):
            getattr(importlib.import_module(module_name), name)()


def test_execution_helpers_over_the_engine(tmp_path):
    import execution

    from tests.compat.conftest import build

    build(tmp_path)  # binds the registry execution works with
    good = {"1": {"class_type": "EmptyImage", "inputs": {"width": 4, "height": 4, "batch_size": 1, "color": 0}},
            "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}}
    valid, error, outputs, node_errors = execution.validate_prompt("p", good, None)
    assert valid and error is None and outputs == ["2"] and node_errors == {}
    bad = {"1": {"class_type": "EmptyImage", "inputs": {"width": "x", "height": 4, "batch_size": 1, "color": 0}},
           "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}}
    assert execution.validate_prompt("p", bad, None)[0] is False

    class Server:
        client_id = "c1"

        def __init__(self):
            self.sent = []

        def send_sync(self, event, data, sid=None):
            self.sent.append((event, data, sid))

    server = Server()
    executor = execution.PromptExecutor(server, cache_type=execution.CacheType.NONE)
    executor.execute(good, "p1", {"client_id": "c1"}, ["2"])
    assert executor.success and executor.history_result["outputs"]["2"]["text"]
    assert ("executing" in [e for e, _d, _s in server.sent])
    errors = []
    executor.handle_execution_error = lambda *a: errors.append(a)  # packs patch this to watch errors
    explode = {"1": {"class_type": "ImageScaleBy", "inputs": {"image": ["2", 0], "upscale_method": "area",
                                                              "scale_by": 1.0}},
               "2": {"class_type": "LoadImage", "inputs": {"image": "missing.png"}},
               "3": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}}
    executor.execute(explode, "p2", {}, ["3"])
    assert len(errors) == 1 and errors[0][0] == "p2" and errors[0][4]["node_id"] == "2"
    assert "missing.png" in str(errors[0][5])
    assert execution.format_value(3) == 3 and execution.format_value(torch.ones(1)) == "tensor([1.])"
    assert execution.full_type_name(torch.Tensor) == "torch.Tensor"
    data, missing, _v3 = execution.get_input_data({"width": 4, "image": ["9", 0]},
                                                  importlib.import_module("nodes").EmptyImage, "5")
    assert data["width"] == [4] and missing == {"image": True}
