"""The attention/block patch nodes and the step-cache/compile nodes in graphs over HTTP, on one
server: patched MODELs (and a patched CLIP) through KSampler on the tiny SD 1.x checkpoint at a
64x64 image (8x8 latent, large enough for SAG's blur and HyperTile's tiles)."""

from __future__ import annotations

import shutil

import pytest

from tests.harness import Server

CKPT = "tiny_sd1.safetensors"


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_checkpoint):
    base = tmp_path_factory.mktemp("model-patch-attention-server")
    checkpoints = base / "models" / "checkpoints"
    checkpoints.mkdir(parents=True)
    shutil.copy(tiny_checkpoint[0], checkpoints / CKPT)
    srv = Server(base_dir=base).start()
    yield srv
    srv.stop()


def _graph(patches: dict[str, dict], positives: dict[str, list] | None = None, extra: dict | None = None,
           steps: int = 4) -> dict:
    """Checkpoint, prompts and one KSampler + decode + save per MODEL: the plain one (``base``,
    before and after the patched ones) and each patch node's output; ``positives`` are extra
    samplings of the plain model with another positive conditioning (from ``extra`` nodes)."""
    graph = {
        "ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": CKPT}},
        "pos": {"class_type": "CLIPTextEncode", "inputs": {"text": "a lighthouse", "clip": ["ckpt", 1]}},
        "neg": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["ckpt", 1]}},
        "latent": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
    }
    graph.update(extra or {})
    runs = {"base": (["ckpt", 0], ["pos", 0])}
    for name, node in patches.items():
        node["inputs"].setdefault("model", ["ckpt", 0])
        runs[name] = ([name, 0], ["pos", 0])
        graph[name] = node
    for name, positive in (positives or {}).items():
        runs[name] = (["ckpt", 0], positive)
    runs["base_again"] = (["ckpt", 0], ["pos", 0])
    for name, (model, positive) in runs.items():
        graph[f"{name}_ks"] = {"class_type": "KSampler", "inputs": {
            "model": model, "seed": 4, "steps": steps, "cfg": 5.0, "sampler_name": "euler",
            "scheduler": "normal", "positive": positive, "negative": ["neg", 0],
            "latent_image": ["latent", 0], "denoise": 1.0}}
        graph[f"{name}_dec"] = {"class_type": "VAEDecode", "inputs": {"samples": [f"{name}_ks", 0],
                                                                      "vae": ["ckpt", 2]}}
        graph[f"{name}_save"] = {"class_type": "SaveImage", "inputs": {"filename_prefix": name,
                                                                       "images": [f"{name}_dec", 0]}}
    return graph


def _run(server: Server, graph: dict) -> dict[str, bytes]:
    pixels = {node_id[:-len("_save")]: image.tobytes()
              for node_id, image in server.saved_images(graph, timeout=280).items()}
    return pixels


def _node_error(server: Server, graph: dict) -> dict:
    r = server.post("/api/prompt", {"prompt": graph})
    assert r.status == 200, r.body
    entry = server.wait_for_job(r.json()["prompt_id"], timeout=280)
    assert entry["status"]["status_str"] == "error"
    return next(m for kind, m in entry["status"]["messages"] if kind == "execution_error")


def test_attention_patches_over_http(server):
    patches = {
        "sag": {"class_type": "SelfAttentionGuidance", "inputs": {"scale": 0.7, "blur_sigma": 2.0}},
        "slg": {"class_type": "SkipLayerGuidanceDiT", "inputs": {
            "double_layers": "1", "single_layers": "", "scale": 3.0, "start_percent": 0.0,
            "end_percent": 1.0, "rescaling_scale": 0.0}},
        "slg3": {"class_type": "SkipLayerGuidanceSD3", "inputs": {
            "layers": "1, 2", "scale": 3.0, "start_percent": 0.0, "end_percent": 1.0}},
        "slgs": {"class_type": "SkipLayerGuidanceDiTSimple", "inputs": {
            "double_layers": "1", "single_layers": "", "start_percent": 0.0, "end_percent": 1.0}},
        "temporal": {"class_type": "UNetTemporalAttentionMultiply", "inputs": {
            "self_structural": 1.5, "self_temporal": 1.0, "cross_structural": 1.0, "cross_temporal": 1.0}},
        "only_temporal": {"class_type": "UNetTemporalAttentionMultiply", "inputs": {
            "self_structural": 1.0, "self_temporal": 2.0, "cross_structural": 1.0, "cross_temporal": 2.0}},
        "hypertile": {"class_type": "HyperTile", "inputs": {
            "tile_size": 32, "swap_size": 1, "max_depth": 0, "scale_depth": False}},
        "tome": {"class_type": "TomePatchModel", "inputs": {"ratio": 0.5}},
        "tome0": {"class_type": "TomePatchModel", "inputs": {"ratio": 0.0}},
    }
    clip_nodes = {
        "clipmul": {"class_type": "CLIPAttentionMultiply", "inputs": {
            "clip": ["ckpt", 1], "q": 1.0, "k": 2.0, "v": 1.0, "out": 1.0}},
        "clippos": {"class_type": "CLIPTextEncode", "inputs": {"text": "a lighthouse", "clip": ["clipmul", 0]}},
    }
    pixels = _run(server, _graph(patches, positives={"clip": ["clippos", 0]}, extra=clip_nodes))
    assert pixels["base"] == pixels["base_again"]
    for name in ("sag", "slg", "slg3", "slgs", "temporal", "hypertile", "tome", "clip"):
        assert pixels[name] != pixels["base"], name
    for name in ("only_temporal", "tome0"):       # nothing to scale; nothing merged
        assert pixels[name] == pixels["base"], name
    # ComfyUI's default layers (7, 8, 9) are past the tiny UNet's 4 transformer blocks.
    error = _node_error(server, _graph({"slg": {"class_type": "SkipLayerGuidanceDiT", "inputs": {
        "double_layers": "7, 8, 9", "single_layers": "7, 8, 9", "scale": 3.0, "start_percent": 0.01,
        "end_percent": 0.15, "rescaling_scale": 0.0}}}))
    assert error["node_id"] == "slg" and "do not exist" in error["exception_message"]
    assert "4 double and 0 single" in error["exception_message"]


@pytest.mark.slow
def test_cache_and_compile_patches_over_http(server):
    patches = {
        "easy": {"class_type": "EasyCache", "inputs": {
            "reuse_threshold": 3.0, "start_percent": 0.0, "end_percent": 1.0, "verbose": True}},
        "easy0": {"class_type": "EasyCache", "inputs": {
            "reuse_threshold": 0.0, "start_percent": 0.15, "end_percent": 0.95, "verbose": False}},
        "lazy": {"class_type": "LazyCache", "inputs": {
            "reuse_threshold": 3.0, "start_percent": 0.0, "end_percent": 1.0, "verbose": False}},
        # On the CPU, torch skips the CUDA graphs and runs the compiled graph as it is.
        "compiled": {"class_type": "TorchCompileModel", "inputs": {"backend": "cudagraphs"}},
    }
    pixels = _run(server, _graph(patches))
    assert pixels["base"] == pixels["base_again"]
    assert pixels["easy"] != pixels["base"] and pixels["lazy"] != pixels["base"]
    assert pixels["easy0"] == pixels["base"]
    assert pixels["compiled"] == pixels["base"]
