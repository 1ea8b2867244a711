"""The model-family nodes in graphs over HTTP, one server with tiny SD 1.x and SDXL checkpoints.

One graph per node module checks real results (conditioning options through PreviewAny, latent
shapes through SaveLatent files, sigmas, image sizes); the families' own models cannot be
loaded yet, so the nodes that need them are checked to fail with a clear node error.
"""

from __future__ import annotations

import io
import re
import shutil

import pytest
from PIL import Image

from opencomfy.compat.safetensors_file import load_file
from tests.harness import Server

SD1, SDXL = "tiny_sd1.safetensors", "tiny_sdxl.safetensors"


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_checkpoint):
    from opencomfy.diffusion.random_checkpoint import write_sdxl_checkpoint

    base = tmp_path_factory.mktemp("family-server")
    checkpoints = base / "models" / "checkpoints"
    checkpoints.mkdir(parents=True)
    shutil.copy(tiny_checkpoint[0], checkpoints / SD1)
    write_sdxl_checkpoint(checkpoints / SDXL, seed=0)
    srv = Server(base_dir=base).start()
    yield srv
    srv.stop()


def _submit(server: Server, graph: dict) -> dict:
    r = server.post("/api/prompt", {"prompt": graph})
    assert r.status == 200, r.body
    return server.wait_for_job(r.json()["prompt_id"], timeout=180)


def _run(server: Server, graph: dict) -> dict:
    entry = _submit(server, graph)
    assert entry["status"]["status_str"] == "success", entry["status"]
    return entry["outputs"]


def _node_error(server: Server, graph: dict) -> dict:
    entry = _submit(server, graph)
    assert entry["status"]["status_str"] == "error"
    return next(m[1] for m in entry["status"]["messages"] if m[0] == "execution_error")


def _base(ckpt: str = SD1) -> dict:
    return {"ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
            "pos": {"class_type": "CLIPTextEncode", "inputs": {"text": "a boat", "clip": ["ckpt", 1]}},
            "neg": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["ckpt", 1]}},
            "image": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 32, "batch_size": 1,
                                                             "color": 0x336699}}}


def _text(outputs: dict, node: str) -> str:
    return outputs[node]["text"][0]


def _save_latent(graph: dict, name: str, source: list) -> None:
    graph[name] = {"class_type": "SaveLatent", "inputs": {"samples": source, "filename_prefix": f"latents/{name}"}}


def _latent_shape(server: Server, outputs: dict, name: str) -> tuple:
    entry = outputs[name]["latents"][0]
    tensors, _ = load_file(server.base_dir / "output" / entry["subfolder"] / entry["filename"])
    return tuple(tensors["latent_tensor"].shape)


def test_flux_nodes_in_a_graph(server):
    graph = _base()
    graph.update({
        "guidance": {"class_type": "FluxGuidance", "inputs": {"conditioning": ["pos", 0], "guidance": 2.5}},
        "flux2": {"class_type": "EmptyFlux2LatentImage", "inputs": {"width": 64, "height": 32, "batch_size": 2}},
        "ref": {"class_type": "ReferenceLatent", "inputs": {"conditioning": ["guidance", 0], "latent": ["flux2", 0]}},
        "method": {"class_type": "FluxKontextMultiReferenceLatentMethod",
                   "inputs": {"conditioning": ["ref", 0], "reference_latents_method": "uxo/uno"}},
        "show": {"class_type": "PreviewAny", "inputs": {"source": ["method", 0]}},
        "sched": {"class_type": "Flux2Scheduler", "inputs": {"steps": 4, "width": 64, "height": 64}},
        "sigmas": {"class_type": "PreviewAny", "inputs": {"source": ["sched", 0]}},
        "kontext": {"class_type": "FluxKontextImageScale", "inputs": {"image": ["image", 0]}},
        "preview": {"class_type": "PreviewImage", "inputs": {"images": ["kontext", 0]}},
    })
    _save_latent(graph, "flux2_latent", ["flux2", 0])
    outputs = _run(server, graph)
    shown = _text(outputs, "show")
    assert "'guidance': 2.5" in shown and "'reference_latents_method': 'uxo'" in shown
    assert "'reference_latents': [tensor(" in shown
    assert _latent_shape(server, outputs, "flux2_latent") == (2, 128, 2, 4)
    values = [float(v) for v in re.findall(r"[-\d.]+(?:e[-+]\d+)?", _text(outputs, "sigmas").split("(")[1])]
    assert len(values) == 5 and values[0] == 1.0 and values[-1] == 0.0
    image = outputs["preview"]["images"][0]
    r = server.get(f"/api/view?filename={image['filename']}&subfolder={image['subfolder']}&type={image['type']}")
    assert Image.open(io.BytesIO(r.body)).size == (1456, 720)


def test_sd3_module_sdxl_encoder_works_and_sd3_encoders_fail_clearly(server):
    graph = _base(SDXL)
    graph["sdxl"] = {"class_type": "CLIPTextEncodeSDXL", "inputs": {
        "clip": ["ckpt", 1], "width": 1024, "height": 768, "crop_w": 0, "crop_h": 32,
        "target_width": 512, "target_height": 384, "text_g": "a red boat", "text_l": "a boat"}}
    graph["show"] = {"class_type": "PreviewAny", "inputs": {"source": ["sdxl", 0]}}
    shown = _text(_run(server, graph), "show")
    assert "'target_width': 512" in shown and "'crop_h': 32" in shown and "'pooled_output'" in shown

    graph = _base()
    graph["sd3"] = {"class_type": "CLIPTextEncodeSD3", "inputs": {
        "clip": ["ckpt", 1], "clip_l": "a", "clip_g": "b", "t5xxl": "c", "empty_padding": "none"}}
    graph["show"] = {"class_type": "PreviewAny", "inputs": {"source": ["sd3", 0]}}
    error = _node_error(server, graph)
    assert error["node_type"] == "CLIPTextEncodeSD3"
    assert "missing g, t5xxl" in error["exception_message"]


def test_sd_special_conditionings_in_a_graph(server):
    graph = _base()
    graph["ip2p"] = {"class_type": "InstructPixToPixConditioning", "inputs": {
        "positive": ["pos", 0], "negative": ["neg", 0], "vae": ["ckpt", 2], "pixels": ["image", 0]}}
    graph["up"] = {"class_type": "SD_4XUpscale_Conditioning", "inputs": {
        "images": ["image", 0], "positive": ["pos", 0], "negative": ["neg", 0], "scale_ratio": 2.0,
        "noise_augmentation": 0.1}}
    graph["show"] = {"class_type": "PreviewAny", "inputs": {"source": ["ip2p", 0]}}
    _save_latent(graph, "ip2p_latent", ["ip2p", 2])
    _save_latent(graph, "up_latent", ["up", 2])
    outputs = _run(server, graph)
    assert "'concat_latent_image': tensor(" in _text(outputs, "show")
    assert _latent_shape(server, outputs, "ip2p_latent") == (1, 4, 4, 8)
    assert _latent_shape(server, outputs, "up_latent") == (1, 4, 16, 32)


def test_wan_nodes_in_a_graph_and_the_video_vae_error(server):
    graph = _base()
    graph.update({
        "i2v": {"class_type": "WanImageToVideo", "inputs": {
            "positive": ["pos", 0], "negative": ["neg", 0], "vae": ["ckpt", 2], "width": 32,
            "height": 16, "length": 9, "batch_size": 1}},
        "trim": {"class_type": "TrimVideoLatent", "inputs": {"samples": ["i2v", 2], "trim_amount": 1}},
        "camera": {"class_type": "WanCameraEmbedding", "inputs": {
            "camera_pose": "Zoom In", "width": 32, "height": 16, "length": 5}},
        "cam_i2v": {"class_type": "WanCameraImageToVideo", "inputs": {
            "positive": ["pos", 0], "negative": ["neg", 0], "vae": ["ckpt", 2], "width": ["camera", 1],
            "height": ["camera", 2], "length": ["camera", 3], "batch_size": 1,
            "camera_conditions": ["camera", 0]}},
        "show": {"class_type": "PreviewAny", "inputs": {"source": ["cam_i2v", 0]}},
    })
    _save_latent(graph, "wan_latent", ["i2v", 2])
    _save_latent(graph, "trimmed", ["trim", 0])
    _save_latent(graph, "cam_latent", ["cam_i2v", 2])
    outputs = _run(server, graph)
    assert _latent_shape(server, outputs, "wan_latent") == (1, 16, 3, 2, 4)
    assert _latent_shape(server, outputs, "trimmed") == (1, 16, 2, 2, 4)
    assert _latent_shape(server, outputs, "cam_latent") == (1, 16, 2, 2, 4)
    assert "'camera_conditions': tensor(" in _text(outputs, "show")

    graph = _base()
    graph["i2v"] = {"class_type": "WanImageToVideo", "inputs": {
        "positive": ["pos", 0], "negative": ["neg", 0], "vae": ["ckpt", 2], "width": 32,
        "height": 16, "length": 9, "batch_size": 1, "start_image": ["image", 0]}}
    _save_latent(graph, "never", ["i2v", 2])
    error = _node_error(server, graph)
    assert error["node_type"] == "WanImageToVideo"
    assert "Wan 2.1 video VAE" in error["exception_message"]


def test_ltxv_nodes_in_a_graph(server):
    graph = _base()
    graph.update({
        "cond": {"class_type": "LTXVConditioning", "inputs": {"positive": ["pos", 0], "negative": ["neg", 0],
                                                              "frame_rate": 24.0}},
        "empty": {"class_type": "EmptyLTXVLatentVideo", "inputs": {"width": 64, "height": 64, "length": 17,
                                                                   "batch_size": 1}},
        "crop": {"class_type": "LTXVCropGuides", "inputs": {"positive": ["cond", 0], "negative": ["cond", 1],
                                                            "latent": ["empty", 0]}},
        "show": {"class_type": "PreviewAny", "inputs": {"source": ["crop", 0]}},
        "sched": {"class_type": "LTXVScheduler", "inputs": {"steps": 4, "max_shift": 2.05, "base_shift": 0.95,
                                                            "stretch": True, "terminal": 0.1,
                                                            "latent": ["empty", 0]}},
        "sigmas": {"class_type": "PreviewAny", "inputs": {"source": ["sched", 0]}},
        "pre": {"class_type": "LTXVPreprocess", "inputs": {"image": ["image", 0], "img_compression": 30}},
        "preview": {"class_type": "PreviewImage", "inputs": {"images": ["pre", 0]}},
    })
    _save_latent(graph, "ltxv", ["crop", 2])
    outputs = _run(server, graph)
    assert "'frame_rate': 24.0" in _text(outputs, "show")
    assert _latent_shape(server, outputs, "ltxv") == (1, 128, 3, 2, 2)
    assert "0.1000" in _text(outputs, "sigmas")                # stretched down to the terminal
    assert outputs["preview"]["images"]

    graph = _base()
    graph["empty"] = {"class_type": "EmptyLTXVLatentVideo", "inputs": {"width": 64, "height": 64,
                                                                       "length": 17, "batch_size": 1}}
    graph["guide"] = {"class_type": "LTXVAddGuide", "inputs": {
        "positive": ["pos", 0], "negative": ["neg", 0], "vae": ["ckpt", 2], "latent": ["empty", 0],
        "image": ["image", 0], "frame_idx": 0, "strength": 1.0}}
    _save_latent(graph, "never", ["guide", 2])
    error = _node_error(server, graph)
    assert error["node_type"] == "LTXVAddGuide" and "LTX-Video VAE" in error["exception_message"]


def test_hunyuan_cosmos_and_video_area_in_a_graph(server):
    graph = _base()
    graph.update({
        "hy": {"class_type": "HunyuanImageToVideo", "inputs": {
            "positive": ["pos", 0], "vae": ["ckpt", 2], "width": 32, "height": 16, "length": 5,
            "batch_size": 2, "guidance_type": "v1 (concat)"}},
        "cosmos": {"class_type": "CosmosPredict2ImageToVideoLatent", "inputs": {
            "vae": ["ckpt", 2], "width": 32, "height": 32, "length": 9, "batch_size": 1}},
        "area": {"class_type": "ConditioningSetAreaPercentageVideo", "inputs": {
            "conditioning": ["pos", 0], "width": 0.5, "height": 0.5, "temporal": 1.0, "x": 0.25,
            "y": 0.0, "z": 0.0, "strength": 1.5}},
        "show": {"class_type": "PreviewAny", "inputs": {"source": ["area", 0]}},
    })
    _save_latent(graph, "hy_latent", ["hy", 1])
    _save_latent(graph, "cosmos_latent", ["cosmos", 0])
    outputs = _run(server, graph)
    assert _latent_shape(server, outputs, "hy_latent") == (2, 16, 2, 2, 4)
    assert _latent_shape(server, outputs, "cosmos_latent") == (1, 16, 3, 4, 4)
    assert "'area': ('percentage', 1.0, 0.5, 0.5, 0.0, 0.0, 0.25)" in _text(outputs, "show")


def test_qwen_nodes_in_a_graph_and_the_encoder_error(server):
    graph = {"layered": {"class_type": "EmptyQwenImageLayeredLatentImage", "inputs": {
        "width": 64, "height": 32, "layers": 2, "batch_size": 1}}}
    _save_latent(graph, "layers", ["layered", 0])
    outputs = _run(server, graph)
    assert _latent_shape(server, outputs, "layers") == (1, 16, 3, 4, 8)

    graph = _base()
    graph["edit"] = {"class_type": "TextEncodeQwenImageEditPlus", "inputs": {
        "clip": ["ckpt", 1], "prompt": "make it red", "vae": ["ckpt", 2], "image1": ["image", 0]}}
    graph["show"] = {"class_type": "PreviewAny", "inputs": {"source": ["edit", 0]}}
    error = _node_error(server, graph)
    assert error["node_type"] == "TextEncodeQwenImageEditPlus"
    assert "Qwen2.5-VL" in error["exception_message"]
