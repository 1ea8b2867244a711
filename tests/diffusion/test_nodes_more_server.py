"""The hook, loader, merge, sampler, conditioning and patch nodes that test_*_more.py check in
process, here in graphs over HTTP against one real server (tiny SD 1.x / SD 2.x checkpoints, a
hypernetwork, a ControlNet, a config). Each result is checked against an independent branch of
the same graph (a hook against the merged model it stands for, a sampler setting against the
sampler it equals) or against the input files themselves (saved weights = the hand blend)."""

from __future__ import annotations

import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from opencomfy.diffusion.memory import models_in_use
from opencomfy.nodes.diffusion_conditioning import CLIPTextEncode
from opencomfy.nodes.diffusion_sampling import KSampler
from opencomfy.weights import read_state_dict
from tests.diffusion.test_clip_vision import _clip_tower, _rounded
from tests.diffusion.test_controlnet import controlnet  # noqa: F401  (module fixture: a tiny ControlNet file)
from tests.diffusion.test_loaders_more import V_CONFIG, _by_hand, _hypernetwork
from tests.harness import Server

A, B, SD2_A, SD2_B, IMG = "a.safetensors", "b.safetensors", "sd2_a.safetensors", "sd2_b.safetensors", "img.safetensors"


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_checkpoint, controlnet):  # noqa: F811
    from opencomfy.diffusion.random_checkpoint import write_sd1_checkpoint, write_sd2_checkpoint

    base = tmp_path_factory.mktemp("more-nodes-server")
    models = base / "models"
    for folder in ("checkpoints", "configs", "hypernetworks", "controlnet"):
        (models / folder).mkdir(parents=True)
    checkpoints = models / "checkpoints"
    shutil.copy(tiny_checkpoint[0], checkpoints / A)
    write_sd1_checkpoint(checkpoints / B, "tiny", seed=11)
    write_sd2_checkpoint(checkpoints / SD2_A, seed=1)
    write_sd2_checkpoint(checkpoints / SD2_B, seed=2)
    with_vision = {**read_state_dict(str(tiny_checkpoint[0])), **_clip_tower().state_dict()}
    save_file({k: v.contiguous() for k, v in with_vision.items()}, str(checkpoints / IMG))
    (models / "configs" / "v.yaml").write_text(V_CONFIG)
    torch.save(_hypernetwork(), models / "hypernetworks" / "tiny.pt")
    shutil.copy(controlnet[1] / "tiny_cn.safetensors", models / "controlnet" / "tiny_cn.safetensors")
    srv = Server(base_dir=base, env={"OPENCOMFY_ALLOW_PICKLE": "1"}).start()
    yield srv
    srv.stop()


def _base() -> dict:
    return {
        "a": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": A}},
        "b": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": B}},
        "pos": {"class_type": "CLIPTextEncode", "inputs": {"text": "a lighthouse", "clip": ["a", 1]}},
        "neg": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["a", 1]}},
        "latent": {"class_type": "EmptyLatentImage", "inputs": {"width": 32, "height": 32, "batch_size": 1}},
    }


def _sample(graph: dict, name: str, model: list, positive: list | None = None, negative: list | None = None,
            steps: int = 3) -> None:
    """A KSampler whose result SaveLatent writes as ``latents/<name>``."""
    graph[name] = {"class_type": "KSampler", "inputs": {
        "seed": 3, "steps": steps, "cfg": 5.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0,
        "model": model, "positive": positive or ["pos", 0], "negative": negative or ["neg", 0],
        "latent_image": ["latent", 0]}}
    graph[f"{name}_save"] = {"class_type": "SaveLatent", "inputs": {"samples": [name, 0],
                                                                   "filename_prefix": f"latents/{name}"}}


def _submit(server: Server, graph: dict) -> dict:
    r = server.post("/api/prompt", {"prompt": graph})
    assert r.status == 200, r.body
    assert not r.json().get("node_errors"), r.json()["node_errors"]     # every output node runs
    return server.wait_for_job(r.json()["prompt_id"], timeout=300)


def _run(server: Server, graph: dict) -> dict:
    entry = _submit(server, graph)
    assert entry["status"]["status_str"] == "success", entry["status"]
    return entry["outputs"]


def _latent(server: Server, outputs: dict, name: str) -> torch.Tensor:
    entry = outputs[f"{name}_save"]["latents"][0]
    return load_file(str(server.base_dir / "output" / entry["subfolder"] / entry["filename"]))["latent_tensor"]


def _saved(server: Server, folder: str, prefix: str) -> dict[str, torch.Tensor]:
    [path] = (server.base_dir / "output" / folder).glob(f"{prefix}_*.safetensors")
    return load_file(str(path))


def _close(a: torch.Tensor, b: torch.Tensor, atol: float = 1e-4) -> None:
    torch.testing.assert_close(a, b, atol=atol, rtol=1e-4)


# --- hooks -------------------------------------------------------------------------------------

def test_hook_nodes_stand_for_the_weights_they_add(server):
    graph = _base()
    graph.update({
        # B's UNet as a hook on both prompts, through every combine node and a keyframe list at 1 ...
        "hook": {"class_type": "CreateHookModelAsLoraModelOnly", "inputs": {"ckpt_name": B, "strength_model": 1.0}},
        "c2": {"class_type": "CombineHooks2", "inputs": {"hooks_A": ["hook", 0]}},
        "c4": {"class_type": "CombineHooks4", "inputs": {"hooks_C": ["c2", 0]}},
        "c8": {"class_type": "CombineHooks8", "inputs": {"hooks_H": ["c4", 0]}},
        # (a list in a prompt is a link, in ComfyUI too, and no core node makes FLOATS: one number)
        "kf": {"class_type": "CreateHookKeyframesFromFloats", "inputs": {
            "floats_strength": 1.0, "start_percent": 0.0, "end_percent": 0.5, "print_keyframes": False}},
        "keyed": {"class_type": "SetHookKeyframes", "inputs": {"hooks": ["c8", 0], "hook_kf": ["kf", 0]}},
        "pair": {"class_type": "PairConditioningSetProperties", "inputs": {
            "positive_NEW": ["pos", 0], "negative_NEW": ["neg", 0], "strength": 1.0, "set_cond_area": "default",
            "hooks": ["keyed", 0]}},
        # ... samples as the model A + B does.
        "added": {"class_type": "ModelMergeAdd", "inputs": {"model1": ["a", 0], "model2": ["b", 0]}},
        # B's text encoder as a CLIP hook encodes as the CLIP A + B does.
        "clip_hook": {"class_type": "CreateHookModelAsLora", "inputs": {
            "ckpt_name": B, "strength_model": 0.0, "strength_clip": 1.0}},
        "hooked_clip": {"class_type": "SetClipHooks", "inputs": {
            "clip": ["a", 1], "apply_to_conds": True, "schedule_clip": False, "hooks": ["clip_hook", 0]}},
        "hooked_pos": {"class_type": "CLIPTextEncode", "inputs": {"text": "a lighthouse", "clip": ["hooked_clip", 0]}},
        "added_clip": {"class_type": "CLIPMergeAdd", "inputs": {"clip1": ["a", 1], "clip2": ["b", 1]}},
        "added_pos": {"class_type": "CLIPTextEncode", "inputs": {"text": "a lighthouse", "clip": ["added_clip", 0]}},
        # conditioning property nodes, shown as text
        "mask": {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": 8, "height": 8}},
        "range": {"class_type": "ConditioningTimestepsRange", "inputs": {"start_percent": 0.25, "end_percent": 0.75}},
        "props": {"class_type": "ConditioningSetPropertiesAndCombine", "inputs": {
            "cond": ["neg", 0], "cond_NEW": ["pos", 0], "strength": 0.6, "set_cond_area": "mask bounds",
            "mask": ["mask", 0], "timesteps": ["range", 0]}},
        "show_props": {"class_type": "PreviewAny", "inputs": {"source": ["props", 0]}},
        "defaults": {"class_type": "PairConditioningSetDefaultCombine", "inputs": {
            "positive": ["pos", 0], "negative": ["neg", 0], "positive_DEFAULT": ["neg", 0],
            "negative_DEFAULT": ["pos", 0]}},
        "show_defaults": {"class_type": "PreviewAny", "inputs": {"source": ["defaults", 1]}},
    })
    _sample(graph, "plain", ["a", 0])
    _sample(graph, "hooked", ["a", 0], ["pair", 0], ["pair", 1])
    _sample(graph, "merged", ["added", 0])
    _sample(graph, "clip_hooked", ["a", 0], ["hooked_pos", 0])
    _sample(graph, "clip_merged", ["a", 0], ["added_pos", 0])
    outputs = _run(server, graph)
    hooked, merged = _latent(server, outputs, "hooked"), _latent(server, outputs, "merged")
    _close(hooked, merged, atol=1e-3)
    assert not torch.allclose(hooked, _latent(server, outputs, "plain"), atol=1e-2)
    _close(_latent(server, outputs, "clip_hooked"), _latent(server, outputs, "clip_merged"), atol=1e-3)
    props = outputs["show_props"]["text"][0]
    assert props.count("tensor(") >= 3                       # two entries (and the mask)
    for shown in ("'mask_strength': 0.6", "'set_area_to_bounds': True", "'start_percent': 0.25",
                  "'end_percent': 0.75"):
        assert shown in props
    defaults = outputs["show_defaults"]["text"][0]
    assert defaults.count("'default': True") == 1


# --- loaders, merges, saving --------------------------------------------------------------------

def test_loader_nodes_in_a_graph(server, tiny_models):
    graph = _base()
    graph.update({
        "cfg_ckpt": {"class_type": "CheckpointLoader", "inputs": {"config_name": "v.yaml", "ckpt_name": A}},
        "cfg_pos": {"class_type": "CLIPTextEncode", "inputs": {"text": "a lighthouse", "clip": ["cfg_ckpt", 1]}},
        "cfg_neg": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["cfg_ckpt", 1]}},
        "v": {"class_type": "ModelSamplingDiscrete", "inputs": {"model": ["a", 0], "sampling": "v_prediction",
                                                                 "zsnr": False}},
        "layer": {"class_type": "CLIPSetLastLayer", "inputs": {"clip": ["a", 1], "stop_at_clip_layer": -2}},
        "ref_pos": {"class_type": "CLIPTextEncode", "inputs": {"text": "a lighthouse", "clip": ["layer", 0]}},
        "ref_neg": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["layer", 0]}},
        "hyper": {"class_type": "HypernetworkLoader", "inputs": {"model": ["a", 0], "hypernetwork_name": "tiny.pt",
                                                                  "strength": 0.7}},
        "img": {"class_type": "ImageOnlyCheckpointLoader", "inputs": {"ckpt_name": IMG}},
        "img_save": {"class_type": "ImageOnlyCheckpointSave", "inputs": {
            "model": ["img", 0], "clip_vision": ["img", 1], "vae": ["img", 2], "filename_prefix": "checkpoints/img"}},
    })
    _sample(graph, "with_config", ["cfg_ckpt", 0], ["cfg_pos", 0], ["cfg_neg", 0])
    _sample(graph, "by_nodes", ["v", 0], ["ref_pos", 0], ["ref_neg", 0])
    _sample(graph, "hyper_out", ["hyper", 0])
    outputs = _run(server, graph)
    _close(_latent(server, outputs, "with_config"), _latent(server, outputs, "by_nodes"))

    # The hypernetwork: the same sampling here with the patch written out by hand.
    model, clip, _ = tiny_models
    patched = model.clone()
    by_hand = _by_hand(_hypernetwork(), 0.7)
    patched.set_model_attn1_patch(by_hand)
    patched.set_model_attn2_patch(by_hand)
    (expected,) = KSampler().sample(patched, 3, 3, 5.0, "euler", "normal", CLIPTextEncode().encode(clip, "a lighthouse")[0],
                                    CLIPTextEncode().encode(clip, "blurry")[0], {"samples": torch.zeros(1, 4, 4, 4)})
    _close(_latent(server, outputs, "hyper_out"), expected["samples"], atol=1e-3)

    # The image-only checkpoint saved back: the input's UNet and its CLIP vision tower (fp16).
    saved = _saved(server, "checkpoints", "img")
    source = read_state_dict(str(server.base_dir / "models" / "checkpoints" / A))
    unet_keys = [k for k in source if k.startswith("model.diffusion_model.")]
    assert unet_keys and all(torch.equal(saved[k].float(), source[k].float()) for k in unet_keys)
    tower = _rounded(_clip_tower()).state_dict()
    key = "vision_model.encoder.layers.0.self_attn.q_proj.weight"
    torch.testing.assert_close(saved[key].float(), tower[key])


def test_lora_model_loader_without_a_lora_model_is_a_clear_validation_error(server):
    """No core node makes a LORA_MODEL yet (ComfyUI's comes from TrainLoraNode): the loader
    refuses a graph that does not link one."""
    graph = _base()
    graph["lora"] = {"class_type": "LoraModelLoader", "inputs": {"model": ["a", 0], "strength_model": 1.0}}
    _sample(graph, "lora_out", ["lora", 0])
    r = server.post("/api/prompt", {"prompt": graph})
    assert r.status == 400, r.body
    errors = r.json()["node_errors"]["lora"]["errors"]
    assert errors[0]["type"] == "required_input_missing" and "lora" in errors[0]["details"]


def _block_of(key: str, dotted: bool) -> str:
    parts = key.split(".")
    if parts[2] in ("input_blocks", "middle_block", "output_blocks"):
        return f"{parts[2]}.{parts[3]}" + ("." if dotted else "")
    return parts[2] + "."


def test_block_merges_save_the_hand_blend(server):
    from opencomfy.nodes.model_merging import ModelMergeSD1, ModelMergeSDXL

    sd1_ratios = {p: round((i + 1) / 30, 4) for i, p in enumerate(ModelMergeSD1.PREFIXES)}
    xl_ratios = {p: round((i + 1) / 30, 4) for i, p in enumerate(ModelMergeSDXL.PREFIXES)}
    graph = {
        "sd2a": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": SD2_A}},
        "sd2b": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": SD2_B}},
        "a": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": A}},
        "b": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": B}},
        "sd2": {"class_type": "ModelMergeSD2", "inputs": {"model1": ["sd2a", 0], "model2": ["sd2b", 0], **sd1_ratios}},
        # (the SDXL block names on an SD 1.x pair: the node merges by key prefix, whatever the model)
        "xl": {"class_type": "ModelMergeSDXL", "inputs": {"model1": ["a", 0], "model2": ["b", 0], **xl_ratios}},
        "save_sd2": {"class_type": "ModelSave", "inputs": {"model": ["sd2", 0], "filename_prefix": "merged/sd2"}},
        "save_xl": {"class_type": "ModelSave", "inputs": {"model": ["xl", 0], "filename_prefix": "merged/xl"}},
    }
    _run(server, graph)
    folder = server.base_dir / "models" / "checkpoints"
    for prefix, (first, second), ratios, dotted in (("sd2", (SD2_A, SD2_B), sd1_ratios, True),
                                                    ("xl", (A, B), xl_ratios, False)):
        saved = _saved(server, "merged", prefix)
        wa, wb = read_state_dict(str(folder / first)), read_state_dict(str(folder / second))
        keys = [k for k in wa if k.startswith("model.diffusion_model.")]
        assert keys and set(keys) <= set(saved)
        for key in keys:
            r = ratios[_block_of(key, dotted)]
            _close(saved[key].float(), wa[key].float() * r + wb[key].float() * (1 - r), atol=1e-5)


# --- samplers -------------------------------------------------------------------------------------

def test_sampler_nodes_equal_the_samplers_they_stand_for(server):
    graph = _base()
    graph.update({
        "guider": {"class_type": "CFGGuider", "inputs": {"model": ["a", 0], "positive": ["pos", 0],
                                                          "negative": ["neg", 0], "cfg": 5.0}},
        "sigmas": {"class_type": "BasicScheduler", "inputs": {"model": ["a", 0], "scheduler": "karras",
                                                               "steps": 4, "denoise": 1.0}},
        "noise": {"class_type": "RandomNoise", "inputs": {"noise_seed": 5}},
    })
    pairs = {
        "er_ode": ({"class_type": "SamplerER_SDE", "inputs": {"solver_type": "ODE", "max_stage": 1, "eta": 1.0,
                                                               "s_noise": 1.0}}, "euler"),
        "seeds": ({"class_type": "SamplerSEEDS2", "inputs": {"solver_type": "phi_1", "eta": 1.0, "s_noise": 1.0,
                                                              "r": 0.5}}, "seeds_2"),
        "sa": ({"class_type": "SamplerSASolver", "inputs": {
            "model": ["a", 0], "eta": 1.0, "sde_start_percent": 0.2, "sde_end_percent": 0.8, "s_noise": 1.0,
            "predictor_order": 3, "corrector_order": 4, "use_pece": False, "simple_order_2": False}}, "sa_solver"),
        "adaptive": ({"class_type": "SamplerDPMAdaptative", "inputs": {
            "order": 3, "rtol": 0.05, "atol": 0.0078, "h_init": 0.05, "pcoeff": 0.0, "icoeff": 1.0,
            "dcoeff": 0.0, "accept_safety": 0.81, "eta": 0.0, "s_noise": 1.0}}, "dpm_adaptive"),
    }
    for name, (node, reference) in pairs.items():
        graph[name] = node
        graph[f"{name}_ref"] = {"class_type": "KSamplerSelect", "inputs": {"sampler_name": reference}}
        for which in (name, f"{name}_ref"):
            graph[f"{which}_run"] = {"class_type": "SamplerCustomAdvanced", "inputs": {
                "noise": ["noise", 0], "guider": ["guider", 0], "sampler": [which, 0], "sigmas": ["sigmas", 0],
                "latent_image": ["latent", 0]}}
            graph[f"{which}_run_save"] = {"class_type": "SaveLatent", "inputs": {
                "samples": [f"{which}_run", 0], "filename_prefix": f"latents/{which}"}}
    # phi_2 with r 1 and eta 0 (exponential Heun) is another sampler than the default
    graph["heun"] = {"class_type": "SamplerSEEDS2", "inputs": {"solver_type": "phi_2", "eta": 0.0, "s_noise": 1.0,
                                                               "r": 1.0}}
    graph["heun_run"] = {**graph["seeds_run"], "inputs": {**graph["seeds_run"]["inputs"], "sampler": ["heun", 0]}}
    graph["heun_run_save"] = {"class_type": "SaveLatent", "inputs": {"samples": ["heun_run", 0],
                                                                     "filename_prefix": "latents/heun"}}
    outputs = _run(server, graph)
    for name in pairs:
        _close(_latent(server, outputs, f"{name}_run"), _latent(server, outputs, f"{name}_ref_run"), atol=1e-5)
    heun = _latent(server, outputs, "heun_run")
    assert torch.isfinite(heun).all() and not torch.allclose(heun, _latent(server, outputs, "seeds_run"), atol=1e-3)


# --- conditioning, patches, ControlNet, Wan -------------------------------------------------------

def test_conditioning_patch_and_controlnet_nodes_in_a_graph(server, tiny_models):
    graph = _base()
    graph.update({
        "strong": {"class_type": "ConditioningSetAreaStrength", "inputs": {"conditioning": ["pos", 0],
                                                                            "strength": 3.0}},
        "show_strong": {"class_type": "PreviewAny", "inputs": {"source": ["strong", 0]}},
        "cross": {"class_type": "UNetCrossAttentionMultiply", "inputs": {"model": ["a", 0], "q": 1.0, "k": 2.0,
                                                                          "v": 1.0, "out": 0.5}},
        "save_cross": {"class_type": "ModelSave", "inputs": {"model": ["cross", 0], "filename_prefix": "patched/cross"}},
        "cn": {"class_type": "ControlNetLoader", "inputs": {"control_net_name": "tiny_cn.safetensors"}},
        "hint": {"class_type": "EmptyImage", "inputs": {"width": 32, "height": 32, "batch_size": 1, "color": 0x3366AA}},
        "with_vae": {"class_type": "ControlNetApplySD3", "inputs": {
            "positive": ["pos", 0], "negative": ["neg", 0], "control_net": ["cn", 0], "vae": ["a", 2],
            "image": ["hint", 0], "strength": 0.8, "start_percent": 0.0, "end_percent": 1.0}},
        "advanced": {"class_type": "ControlNetApplyAdvanced", "inputs": {
            "positive": ["pos", 0], "negative": ["neg", 0], "control_net": ["cn", 0], "image": ["hint", 0],
            "strength": 0.8, "start_percent": 0.0, "end_percent": 1.0}},
    })
    _sample(graph, "plain", ["a", 0])
    _sample(graph, "strong_alone", ["a", 0], ["strong", 0])     # alone, a strength cancels out
    _sample(graph, "cn_vae", ["a", 0], ["with_vae", 0], ["with_vae", 1])
    _sample(graph, "cn_advanced", ["a", 0], ["advanced", 0], ["advanced", 1])
    outputs = _run(server, graph)
    assert "'strength': 3.0" in outputs["show_strong"]["text"][0]
    plain = _latent(server, outputs, "plain")
    _close(_latent(server, outputs, "strong_alone"), plain, atol=1e-5)
    controlled = _latent(server, outputs, "cn_vae")
    _close(controlled, _latent(server, outputs, "cn_advanced"), atol=1e-5)
    assert not torch.allclose(controlled, plain, atol=1e-3)
    # Cross-attention k doubled and out halved in the saved weights; self-attention untouched.
    saved = _saved(server, "patched", "cross")
    with models_in_use(tiny_models[0]):
        source = {k: v.detach().clone() for k, v in tiny_models[0].model_state_dict("diffusion_model.").items()}
    block = "diffusion_model.input_blocks.1.1.transformer_blocks.0."
    _close(saved["model." + block + "attn2.to_k.weight"], source[block + "attn2.to_k.weight"] * 2.0, atol=1e-6)
    _close(saved["model." + block + "attn2.to_out.0.bias"], source[block + "attn2.to_out.0.bias"] * 0.5, atol=1e-6)
    _close(saved["model." + block + "attn1.to_k.weight"], source[block + "attn1.to_k.weight"], atol=0)


def test_wan_fun_inpaint_with_an_image_vae_is_a_node_error_naming_the_wan_vae(server):
    graph = _base()
    graph.update({
        "frame": {"class_type": "EmptyImage", "inputs": {"width": 32, "height": 32, "batch_size": 1, "color": 0}},
        "inpaint": {"class_type": "WanFunInpaintToVideo", "inputs": {
            "positive": ["pos", 0], "negative": ["neg", 0], "vae": ["a", 2], "width": 32, "height": 32,
            "length": 5, "batch_size": 1, "start_image": ["frame", 0]}},
        "show": {"class_type": "PreviewAny", "inputs": {"source": ["inpaint", 0]}},
    })
    entry = _submit(server, graph)
    assert entry["status"]["status_str"] == "error"
    error = next(m for kind, m in entry["status"]["messages"] if kind == "execution_error")
    assert error["node_type"] == "WanFunInpaintToVideo" and "Wan 2.1 video VAE" in error["exception_message"]
