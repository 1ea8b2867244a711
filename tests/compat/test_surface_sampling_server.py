"""A real server with packs_extra/sampling_pack, a pack that samples and loads models through
ComfyUI's module surface (``comfy.sample``, ``comfy.samplers``, ``nodes.common_ksampler``,
``comfy.k_diffusion.sampling``, ``comfy.sd``) on a tiny SD 1.5 checkpoint: every route gives
the latent the core nodes give for the same settings, in one graph over HTTP."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from opencomfy.diffusion import available

if not available():
    pytest.skip("the diffusion extra is not installed", allow_module_level=True)

from tests.harness import Server  # noqa: E402
from tests.server.wsutil import Client, json_events, new_id, queue_prompt  # noqa: E402

PACK = Path(__file__).parent / "packs_extra" / "sampling_pack"
CKPT = "tiny_sd1.safetensors"
LORA = "style.safetensors"


def _kohya_lora() -> dict:
    import torch

    g = torch.Generator().manual_seed(0)
    unet = "lora_unet_input_blocks_1_1_transformer_blocks_0_attn2_to_q"
    te = "lora_te_text_model_encoder_layers_0_self_attn_q_proj"
    return {unet + ".lora_down.weight": torch.randn(2, 32, generator=g),
            unet + ".lora_up.weight": torch.randn(32, 2, generator=g), unet + ".alpha": torch.tensor(1.0),
            te + ".lora_down.weight": torch.randn(2, 32, generator=g),
            te + ".lora_up.weight": torch.randn(32, 2, generator=g)}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from safetensors.torch import save_file

    from opencomfy.diffusion.random_checkpoint import write_sd1_checkpoint

    base = tmp_path_factory.mktemp("sampling-surface-server")
    shutil.copytree(PACK, base / "custom_nodes" / "sampling_pack", ignore=shutil.ignore_patterns("__pycache__"))
    (base / "models" / "checkpoints").mkdir(parents=True)
    (base / "models" / "loras").mkdir(parents=True)
    write_sd1_checkpoint(base / "models" / "checkpoints" / CKPT, "tiny", seed=0)
    save_file(_kohya_lora(), str(base / "models" / "loras" / LORA))
    srv = Server(base_dir=base).start()
    yield srv
    srv.stop()


def _settings(model, seed=5, sampler="dpmpp_2m_sde", scheduler="karras", cfg=6.0, denoise=1.0,
              pos="pos", neg="neg", latent="latent") -> dict:
    return {"model": model, "seed": seed, "steps": 3, "cfg": cfg, "sampler_name": sampler,
            "scheduler": scheduler, "positive": [pos, 0], "negative": [neg, 0],
            "latent_image": [latent, 0], "denoise": denoise}


def _diff(graph: dict, name: str, a: list, b: list) -> None:
    graph[name] = {"class_type": "PackLatentDifference", "inputs": {"a": a, "b": b}}
    graph[name + "_show"] = {"class_type": "PreviewAny", "inputs": {"source": [name, 0]}}


def _custom(graph: dict, name: str, guider: list, sampler: list) -> None:
    graph[name + "_noise"] = {"class_type": "RandomNoise", "inputs": {"noise_seed": 5}}
    graph[name + "_sigmas"] = {"class_type": "BasicScheduler", "inputs": {
        "model": ["ckpt", 0], "scheduler": "normal", "steps": 3, "denoise": 1.0}}
    graph[name] = {"class_type": "SamplerCustomAdvanced", "inputs": {
        "noise": [name + "_noise", 0], "guider": guider, "sampler": sampler,
        "sigmas": [name + "_sigmas", 0], "latent_image": ["latent", 0]}}


def _graph() -> dict:
    g = {
        "ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": CKPT}},
        "pos": {"class_type": "CLIPTextEncode", "inputs": {"text": "a lighthouse", "clip": ["ckpt", 1]}},
        "neg": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["ckpt", 1]}},
        "latent": {"class_type": "EmptyLatentImage", "inputs": {"width": 32, "height": 32, "batch_size": 1}},
        "ks": {"class_type": "KSampler", "inputs": _settings(["ckpt", 0])},
        "ks_img2img": {"class_type": "KSampler", "inputs": _settings(["ckpt", 0], denoise=0.6, latent="ks")},
        "ks_euler": {"class_type": "KSampler", "inputs": _settings(["ckpt", 0], sampler="euler", scheduler="normal")},
        # comfy.sample.sample, comfy.samplers.KSampler, nodes.common_ksampler
        "pack_sample": {"class_type": "PackSample", "inputs": _settings(["ckpt", 0])},
        "pack_img2img": {"class_type": "PackSample", "inputs": _settings(["ckpt", 0], denoise=0.6, latent="ks")},
        "pack_object": {"class_type": "PackKSamplerObject", "inputs": _settings(["ckpt", 0])},
        "pack_common": {"class_type": "PackCommonKSampler", "inputs": _settings(["ckpt", 0])},
        # a CFG patch over comfy.samplers.sampling_function: cfg 3 doubled is cfg 6
        "cfg_patch": {"class_type": "PackRecomputeCFG", "inputs": {"model": ["ckpt", 0], "factor": 2.0}},
        "ks_patched": {"class_type": "KSampler", "inputs": _settings(["cfg_patch", 0], cfg=3.0, sampler="euler",
                                                                    scheduler="normal")},
        "ks_cfg3": {"class_type": "KSampler", "inputs": _settings(["ckpt", 0], cfg=3.0, sampler="euler",
                                                                 scheduler="normal")},
        # a guider subclass, and the pack's own sampler function by name and wrapped
        "pack_guider": {"class_type": "PackGuider", "inputs": {"model": ["ckpt", 0], "positive": ["pos", 0],
                                                               "negative": ["neg", 0], "cfg": 6.0}},
        "core_guider": {"class_type": "CFGGuider", "inputs": {"model": ["ckpt", 0], "positive": ["pos", 0],
                                                              "negative": ["neg", 0], "cfg": 6.0}},
        "euler": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
        "by_name": {"class_type": "PackSamplerSelect", "inputs": {"how": "by_name"}},
        "wrapped": {"class_type": "PackSamplerSelect", "inputs": {"how": "wrapped"}},
        # checkpoint + LoRA through comfy.sd against the core loaders
        "pack_loader": {"class_type": "PackLoader", "inputs": {"ckpt_name": CKPT, "lora_name": LORA,
                                                               "strength": 0.8}},
        "kinds": {"class_type": "PreviewAny", "inputs": {"source": ["pack_loader", 3]}},
        "sigmas": {"class_type": "PreviewAny", "inputs": {"source": ["pack_object", 1]}},
        "lpos": {"class_type": "CLIPTextEncode", "inputs": {"text": "a lighthouse", "clip": ["pack_loader", 1]}},
        "lneg": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["pack_loader", 1]}},
        "ks_pack_lora": {"class_type": "KSampler", "inputs": _settings(["pack_loader", 0], pos="lpos", neg="lneg")},
        "core_lora": {"class_type": "LoraLoader", "inputs": {"model": ["ckpt", 0], "clip": ["ckpt", 1],
                                                             "lora_name": LORA, "strength_model": 0.8,
                                                             "strength_clip": 0.8}},
        "cpos": {"class_type": "CLIPTextEncode", "inputs": {"text": "a lighthouse", "clip": ["core_lora", 1]}},
        "cneg": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["core_lora", 1]}},
        "ks_core_lora": {"class_type": "KSampler", "inputs": _settings(["core_lora", 0], pos="cpos", neg="cneg")},
    }
    _custom(g, "custom_guider", ["pack_guider", 0], ["euler", 0])
    _custom(g, "custom_by_name", ["core_guider", 0], ["by_name", 0])
    _custom(g, "custom_wrapped", ["core_guider", 0], ["wrapped", 0])
    _diff(g, "d_sample", ["pack_sample", 0], ["ks", 0])
    _diff(g, "d_img2img", ["pack_img2img", 0], ["ks_img2img", 0])
    _diff(g, "d_object", ["pack_object", 0], ["ks", 0])
    _diff(g, "d_common", ["pack_common", 0], ["ks", 0])
    _diff(g, "d_patched", ["ks_patched", 0], ["ks_euler", 0])
    _diff(g, "d_patch_used", ["ks_patched", 0], ["ks_cfg3", 0])
    _diff(g, "d_guider", ["custom_guider", 0], ["ks_euler", 0])
    _diff(g, "d_by_name", ["custom_by_name", 0], ["ks_euler", 0])
    _diff(g, "d_wrapped", ["custom_wrapped", 0], ["ks_euler", 0])
    _diff(g, "d_lora", ["ks_pack_lora", 0], ["ks_core_lora", 0])
    _diff(g, "d_lora_used", ["ks_pack_lora", 0], ["ks", 0])
    return g


@pytest.fixture(scope="module")
def run(server):
    client_id = new_id()
    client = Client(server, client_id)
    try:
        prompt_id = queue_prompt(server, _graph(), client_id)
        messages = client.until_done(prompt_id, timeout=240)
    finally:
        client.close()
    entry = server.wait_for_job(prompt_id, timeout=60)
    assert entry["status"]["status_str"] == "success", entry["status"]
    return entry["outputs"], messages


def _value(outputs: dict, name: str) -> float:
    return float(outputs[name + "_show"]["text"][0])


def test_the_pack_loads_with_every_node(server):
    info = server.get("/api/object_info").json()
    for name in ("PackSample", "PackKSamplerObject", "PackCommonKSampler", "PackRecomputeCFG", "PackGuider",
                 "PackSamplerSelect", "PackLoader", "PackLatentDifference"):
        assert info[name]["python_module"] == "custom_nodes.sampling_pack", name
    assert "karras" in info["PackSample"]["input"]["required"]["scheduler"][0]


@pytest.mark.parametrize("name", ["d_sample", "d_img2img", "d_object", "d_common"])
def test_the_surface_samples_exactly_as_ksampler(run, name):
    outputs, _ = run
    assert _value(outputs, name) == 0.0


def test_a_cfg_patch_calling_sampling_function_is_used(run):
    outputs, _ = run
    assert _value(outputs, "d_patched") < 1e-5      # cfg 3 x 2 in the patch == cfg 6
    assert _value(outputs, "d_patch_used") > 1e-3   # and differs from plain cfg 3


@pytest.mark.parametrize("name", ["d_guider", "d_by_name", "d_wrapped"])
def test_a_guider_subclass_and_the_packs_sampler_function_match_euler(run, name):
    outputs, _ = run
    assert _value(outputs, name) < 1e-5


def test_checkpoint_and_lora_through_comfy_sd_match_the_core_loaders(run):
    outputs, _ = run
    assert outputs["kinds"]["text"] == ["True True None"]
    assert _value(outputs, "d_lora") == 0.0
    assert _value(outputs, "d_lora_used") > 1e-3    # the LoRA changed the result


def test_ksampler_object_sigmas_and_progress_of_the_packs_sampler(run):
    outputs, messages = run
    sigmas = [float(v) for v in outputs["sigmas"]["text"][0].split(", ")]
    assert len(sigmas) == 4 and sigmas[-1] == 0.0 and sigmas == sorted(sigmas, reverse=True)
    progress = [e["data"] for e in json_events(messages) if e["type"] == "progress"
                and e["data"]["node"] == "pack_sample"]
    assert [(p["value"], p["max"]) for p in progress] == [(1, 3), (2, 3), (3, 3)]
