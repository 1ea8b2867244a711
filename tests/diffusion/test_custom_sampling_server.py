"""The custom sampling nodes in graphs over HTTP against a real server with a tiny checkpoint."""

from __future__ import annotations

import io
import re
import shutil

import pytest
from PIL import Image

from tests.harness import Server

CKPT = "tiny_sd1.safetensors"


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_checkpoint):
    base = tmp_path_factory.mktemp("custom-sampling-server")
    checkpoints = base / "models" / "checkpoints"
    checkpoints.mkdir(parents=True)
    shutil.copy(tiny_checkpoint[0], checkpoints / CKPT)
    srv = Server(base_dir=base).start()
    yield srv
    srv.stop()


def _base() -> dict:
    """Checkpoint, prompts and a small empty latent: the nodes every graph here starts from."""
    return {
        "ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": CKPT}},
        "pos": {"class_type": "CLIPTextEncode", "inputs": {"text": "a lighthouse", "clip": ["ckpt", 1]}},
        "neg": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["ckpt", 1]}},
        "empty": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["ckpt", 1]}},
        "latent": {"class_type": "EmptyLatentImage", "inputs": {"width": 32, "height": 32, "batch_size": 1}},
    }


def _save(graph: dict, name: str, samples: list) -> None:
    graph[f"{name}_decode"] = {"class_type": "VAEDecode", "inputs": {"samples": samples, "vae": ["ckpt", 2]}}
    graph[f"{name}_save"] = {"class_type": "SaveImage", "inputs": {"filename_prefix": name,
                                                                   "images": [f"{name}_decode", 0]}}


def _preview(graph: dict, name: str, source: list) -> None:
    graph[name] = {"class_type": "PreviewAny", "inputs": {"source": source}}


def _run(server: Server, graph: dict) -> dict:
    r = server.post("/api/prompt", {"prompt": graph})
    assert r.status == 200, r.body
    entry = server.wait_for_job(r.json()["prompt_id"], timeout=180)
    assert entry["status"]["status_str"] == "success", entry["status"]
    return entry["outputs"]


def _pixels(server: Server, outputs: dict, name: str) -> bytes:
    image = outputs[f"{name}_save"]["images"][0]
    r = server.get(f"/api/view?filename={image['filename']}&subfolder={image['subfolder']}&type={image['type']}")
    assert r.status == 200
    return Image.open(io.BytesIO(r.body)).convert("RGB").tobytes()


def _numbers(outputs: dict, name: str) -> list[float]:
    (text,) = outputs[name]["text"]
    return [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?", text.replace("tensor", ""))]


def test_custom_advanced_matches_ksampler_in_one_graph(server):
    graph = _base()
    graph["ks"] = {"class_type": "KSampler", "inputs": {
        "model": ["ckpt", 0], "seed": 5, "steps": 3, "cfg": 6.0, "sampler_name": "dpmpp_2m_sde",
        "scheduler": "karras", "positive": ["pos", 0], "negative": ["neg", 0],
        "latent_image": ["latent", 0], "denoise": 1.0}}
    graph["noise"] = {"class_type": "RandomNoise", "inputs": {"noise_seed": 5}}
    graph["guider"] = {"class_type": "CFGGuider", "inputs": {
        "model": ["ckpt", 0], "positive": ["pos", 0], "negative": ["neg", 0], "cfg": 6.0}}
    graph["select"] = {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "dpmpp_2m_sde"}}
    graph["sched"] = {"class_type": "BasicScheduler", "inputs": {
        "model": ["ckpt", 0], "scheduler": "karras", "steps": 3, "denoise": 1.0}}
    graph["custom"] = {"class_type": "SamplerCustomAdvanced", "inputs": {
        "noise": ["noise", 0], "guider": ["guider", 0], "sampler": ["select", 0],
        "sigmas": ["sched", 0], "latent_image": ["latent", 0]}}
    _save(graph, "ksampler", ["ks", 0])
    _save(graph, "custom", ["custom", 0])
    _save(graph, "denoised", ["custom", 1])
    outputs = _run(server, graph)
    ksampler = _pixels(server, outputs, "ksampler")
    assert ksampler == _pixels(server, outputs, "custom")
    assert ksampler == _pixels(server, outputs, "denoised")   # the last step lands on x0
    assert max(ksampler) - min(ksampler) > 10


def test_scheduler_and_sigma_nodes(server):
    graph = _base()
    graph["manual"] = {"class_type": "ManualSigmas", "inputs": {"sigmas": "4, 3, 2, 1, 0"}}
    graph["split"] = {"class_type": "SplitSigmas", "inputs": {"sigmas": ["manual", 0], "step": 2}}
    graph["flip"] = {"class_type": "FlipSigmas", "inputs": {"sigmas": ["split", 1]}}
    graph["first"] = {"class_type": "SetFirstSigma", "inputs": {"sigmas": ["split", 0], "sigma": 9.0}}
    graph["extend"] = {"class_type": "ExtendIntermediateSigmas", "inputs": {
        "sigmas": ["split", 1], "steps": 2, "start_at_sigma": -1.0, "end_at_sigma": 1.5,
        "spacing": "linear"}}
    graph["denoise"] = {"class_type": "SplitSigmasDenoise", "inputs": {"sigmas": ["manual", 0], "denoise": 0.5}}
    graph["ays"] = {"class_type": "AlignYourStepsScheduler", "inputs": {
        "model_type": "SD1", "steps": 10, "denoise": 1.0}}
    graph["gits"] = {"class_type": "GITSScheduler", "inputs": {"coeff": 1.2, "steps": 2, "denoise": 1.0}}
    graph["optimal"] = {"class_type": "OptimalStepsScheduler", "inputs": {
        "model_type": "FLUX", "steps": 10, "denoise": 1.0}}
    graph["karras"] = {"class_type": "KarrasScheduler", "inputs": {
        "steps": 2, "sigma_max": 10.0, "sigma_min": 0.1, "rho": 1.0}}
    graph["turbo"] = {"class_type": "SDTurboScheduler", "inputs": {"model": ["ckpt", 0], "steps": 1, "denoise": 1.0}}
    graph["percent"] = {"class_type": "SamplingPercentToSigma", "inputs": {
        "model": ["ckpt", 0], "sampling_percent": 0.0, "return_actual_sigma": True}}
    for name, source in (("p_split", ["split", 0]), ("p_flip", ["flip", 0]), ("p_first", ["first", 0]),
                         ("p_extend", ["extend", 0]), ("p_denoise", ["denoise", 1]), ("p_ays", ["ays", 0]),
                         ("p_gits", ["gits", 0]), ("p_optimal", ["optimal", 0]), ("p_karras", ["karras", 0]),
                         ("p_turbo", ["turbo", 0]), ("p_percent", ["percent", 0])):
        _preview(graph, name, source)
    outputs = _run(server, graph)
    assert _numbers(outputs, "p_split") == [4.0, 3.0, 2.0]
    assert _numbers(outputs, "p_flip") == pytest.approx([0.0001, 1.0, 2.0], abs=1e-4)
    assert _numbers(outputs, "p_first") == [9.0, 3.0, 2.0]
    assert _numbers(outputs, "p_extend") == [2.0, 1.5, 1.0, 0.0]
    assert _numbers(outputs, "p_denoise") == [2.0, 1.0, 0.0]
    assert _numbers(outputs, "p_ays")[:2] == pytest.approx([14.6146, 6.4746], abs=1e-3)
    assert _numbers(outputs, "p_gits") == pytest.approx([14.6146, 0.8033, 0.0], abs=1e-3)
    assert _numbers(outputs, "p_optimal")[0] == pytest.approx(0.9968)
    assert _numbers(outputs, "p_karras") == pytest.approx([10.0, 0.1, 0.0])
    assert _numbers(outputs, "p_turbo") == pytest.approx([14.6146, 0.0], abs=1e-3)
    assert _numbers(outputs, "p_percent") == pytest.approx([14.6146], abs=1e-3)


def test_guider_sampler_and_noise_nodes(server):
    graph = _base()
    graph["sigmas"] = {"class_type": "KarrasScheduler", "inputs": {
        "steps": 3, "sigma_max": 14.614642, "sigma_min": 0.0291675, "rho": 7.0}}
    graph["sde"] = {"class_type": "SamplerDPMPP_2M_SDE", "inputs": {
        "solver_type": "heun", "eta": 1.0, "s_noise": 1.0, "noise_device": "cpu"}}
    graph["custom"] = {"class_type": "SamplerCustom", "inputs": {
        "model": ["ckpt", 0], "add_noise": True, "noise_seed": 3, "cfg": 5.0, "positive": ["pos", 0],
        "negative": ["neg", 0], "sampler": ["sde", 0], "sigmas": ["sigmas", 0], "latent_image": ["latent", 0]}}
    graph["dual"] = {"class_type": "DualCFGGuider", "inputs": {
        "model": ["ckpt", 0], "cond1": ["pos", 0], "cond2": ["neg", 0], "negative": ["empty", 0],
        "cfg_conds": 5.0, "cfg_cond2_negative": 2.0, "style": "nested"}}
    graph["basic"] = {"class_type": "BasicGuider", "inputs": {"model": ["ckpt", 0], "conditioning": ["pos", 0]}}
    graph["perp"] = {"class_type": "PerpNegGuider", "inputs": {
        "model": ["ckpt", 0], "positive": ["pos", 0], "negative": ["neg", 0],
        "empty_conditioning": ["empty", 0], "cfg": 5.0, "neg_scale": 1.0}}
    graph["ancestral"] = {"class_type": "SamplerEulerAncestral", "inputs": {"eta": 1.0, "s_noise": 1.0}}
    graph["noise"] = {"class_type": "RandomNoise", "inputs": {"noise_seed": 8}}
    graph["silent"] = {"class_type": "DisableNoise", "inputs": {}}
    graph["noised"] = {"class_type": "AddNoise", "inputs": {
        "model": ["ckpt", 0], "noise": ["noise", 0], "sigmas": ["sigmas", 0], "latent_image": ["latent", 0]}}
    for guider in ("dual", "basic", "perp"):
        source = "silent" if guider == "basic" else "noise"
        latent = ["noised", 0] if guider == "basic" else ["latent", 0]
        graph[f"run_{guider}"] = {"class_type": "SamplerCustomAdvanced", "inputs": {
            "noise": [source, 0], "guider": [guider, 0], "sampler": ["ancestral", 0],
            "sigmas": ["sigmas", 0], "latent_image": latent}}
        _save(graph, guider, [f"run_{guider}", 0])
    _save(graph, "custom", ["custom", 0])
    outputs = _run(server, graph)
    images = {name: _pixels(server, outputs, name) for name in ("custom", "dual", "basic", "perp")}
    for name, pixels in images.items():
        assert max(pixels) - min(pixels) > 10, name
    assert len(set(images.values())) == 4      # each guider gives its own image


def test_bad_sigmas_are_a_node_error(server):
    graph = _base()
    graph["manual"] = {"class_type": "ManualSigmas", "inputs": {"sigmas": "no numbers here"}}
    graph["first"] = {"class_type": "SetFirstSigma", "inputs": {"sigmas": ["manual", 0], "sigma": 5.0}}
    _preview(graph, "show", ["first", 0])
    r = server.post("/api/prompt", {"prompt": graph})
    assert r.status == 200, r.body
    entry = server.wait_for_job(r.json()["prompt_id"], timeout=120)
    assert entry["status"]["status_str"] == "error"
    error = next(m[1] for m in entry["status"]["messages"] if m[0] == "execution_error")
    assert error["node_id"] == "first" and "at least one sigma" in error["exception_message"]
