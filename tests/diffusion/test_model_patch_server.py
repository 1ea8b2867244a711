"""The MODEL patch nodes in graphs over HTTP: patched models through KSampler on the tiny SD 1.x
checkpoint, one graph per node module; the unpatched model's image stays the same."""

from __future__ import annotations

import shutil

import pytest

from tests.harness import Server

CKPT = "tiny_sd1.safetensors"


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_checkpoint):
    base = tmp_path_factory.mktemp("model-patch-server")
    checkpoints = base / "models" / "checkpoints"
    checkpoints.mkdir(parents=True)
    shutil.copy(tiny_checkpoint[0], checkpoints / CKPT)
    srv = Server(base_dir=base).start()
    yield srv
    srv.stop()


def _graph(patches: dict[str, dict]) -> dict:
    """Checkpoint and prompts, then one KSampler + decode + save per MODEL: the plain one
    (``base``, before and after the patched ones) and each patch node's output."""
    graph = {
        "ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": CKPT}},
        "pos": {"class_type": "CLIPTextEncode", "inputs": {"text": "a lighthouse", "clip": ["ckpt", 1]}},
        "neg": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["ckpt", 1]}},
        "latent": {"class_type": "EmptyLatentImage", "inputs": {"width": 32, "height": 32, "batch_size": 1}},
    }
    models = {"base": ["ckpt", 0]}
    for name, node in patches.items():
        node["inputs"].setdefault("model", ["ckpt", 0])
        graph[name] = node
        models[name] = [name, 0]
    models["base_again"] = ["ckpt", 0]
    for name, model in models.items():
        graph[f"{name}_ks"] = {"class_type": "KSampler", "inputs": {
            "model": model, "seed": 4, "steps": 2, "cfg": 5.0, "sampler_name": "euler",
            "scheduler": "normal", "positive": ["pos", 0], "negative": ["neg", 0],
            "latent_image": ["latent", 0], "denoise": 1.0}}
        graph[f"{name}_dec"] = {"class_type": "VAEDecode", "inputs": {"samples": [f"{name}_ks", 0],
                                                                      "vae": ["ckpt", 2]}}
        graph[f"{name}_save"] = {"class_type": "SaveImage", "inputs": {"filename_prefix": name,
                                                                       "images": [f"{name}_dec", 0]}}
    return graph


def _run(server: Server, graph: dict) -> dict[str, bytes]:
    pixels = {node_id[:-len("_save")]: image.tobytes()
              for node_id, image in server.saved_images(graph, timeout=240).items()}
    return pixels


def _check(pixels: dict[str, bytes], patched: list[str]) -> None:
    assert pixels["base"] == pixels["base_again"]
    for name in patched:
        assert pixels[name] != pixels["base"], name


def test_guidance_patches_over_http(server):
    patches = {
        "rescale": {"class_type": "RescaleCFG", "inputs": {"multiplier": 0.7}},
        "apg": {"class_type": "APG", "inputs": {"eta": 0.5, "norm_threshold": 2.0, "momentum": 0.0}},
        "zero": {"class_type": "CFGZeroStar", "inputs": {}},
        "norm": {"class_type": "CFGNorm", "inputs": {"strength": 0.5}},
        "tcfg": {"class_type": "TCFG", "inputs": {}},
        "mahiro": {"class_type": "Mahiro", "inputs": {}},
        "fresca": {"class_type": "FreSca", "inputs": {"scale_low": 1.0, "scale_high": 1.5, "freq_cutoff": 1}},
        "renorm": {"class_type": "RenormCFG", "inputs": {"cfg_trunc": 100.0, "renorm_cfg": 1.0}},
        "eps": {"class_type": "Epsilon Scaling", "inputs": {"scaling_factor": 1.2}},
        "diff": {"class_type": "DifferentialDiffusion", "inputs": {"strength": 1.0}},
    }
    # Chained patches: a clone of a clone keeps both functions.
    patches["chain"] = {"class_type": "RescaleCFG", "inputs": {"model": ["apg", 0], "multiplier": 0.5}}
    pixels = _run(server, _graph(patches))
    _check(pixels, ["rescale", "apg", "zero", "norm", "tcfg", "mahiro", "fresca", "renorm", "eps", "chain"])
    assert pixels["diff"] == pixels["base"]        # no noise mask: nothing for it to do


def test_sampling_patches_over_http(server):
    patches = {
        "sd3": {"class_type": "ModelSamplingSD3", "inputs": {"shift": 3.0}},
        "aura": {"class_type": "ModelSamplingAuraFlow", "inputs": {"shift": 1.73}},
        "flux": {"class_type": "ModelSamplingFlux", "inputs": {"max_shift": 1.15, "base_shift": 0.5,
                                                              "width": 256, "height": 256}},
        "edm": {"class_type": "ModelSamplingContinuousEDM", "inputs": {"sampling": "eps", "sigma_max": 14.6,
                                                                       "sigma_min": 0.03}},
        "bf16": {"class_type": "ModelComputeDtype", "inputs": {"dtype": "bf16"}},
    }
    pixels = _run(server, _graph(patches))
    _check(pixels, ["sd3", "aura", "flux", "edm"])


def test_unet_patches_over_http(server):
    patches = {
        "freeu": {"class_type": "FreeU", "inputs": {"b1": 1.1, "b2": 1.5, "s1": 0.9, "s2": 0.2}},
        "freeu2": {"class_type": "FreeU_V2", "inputs": {"b1": 1.3, "b2": 1.6, "s1": 0.9, "s2": 0.2}},
        "pag": {"class_type": "PerturbedAttentionGuidance", "inputs": {"scale": 3.0}},
        "selfmul": {"class_type": "UNetSelfAttentionMultiply",
                    "inputs": {"q": 1.0, "k": 1.5, "v": 1.0, "out": 1.0}},
        "shrink": {"class_type": "PatchModelAddDownscale", "inputs": {
            "block_number": 1, "downscale_factor": 2.0, "start_percent": 0.0, "end_percent": 0.5,
            "downscale_after_skip": True, "downscale_method": "bicubic", "upscale_method": "bicubic"}},
    }
    pixels = _run(server, _graph(patches))
    _check(pixels, ["freeu", "freeu2", "pag", "selfmul", "shrink"])


def test_bad_patch_input_is_a_node_error(server):
    graph = _graph({"edm": {"class_type": "ModelSamplingContinuousEDM",
                            "inputs": {"sampling": "eps", "sigma_max": 0.001, "sigma_min": 0.002}}})
    r = server.post("/api/prompt", {"prompt": graph})
    assert r.status == 200, r.body
    entry = server.wait_for_job(r.json()["prompt_id"], timeout=240)
    assert entry["status"]["status_str"] == "error"
    error = next(m for kind, m in entry["status"]["messages"] if kind == "execution_error")
    assert "sigma_min" in error["exception_message"] and error["node_id"] == "edm"
