"""A real server with packs_extra/surface_pack, a pack that uses ComfyUI's module surface the way
popular packs do, driven over HTTP and the websocket: it loads (placeholder subclasses and data
attributes at import time), its nodes' results are right, ProgressBar updates and previews reach
the client, and a node that calls a placeholder fails with an error naming the missing symbol."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.harness import Server
from tests.server.wsutil import Client, binary_type, json_events, new_id, queue_prompt

PACK = Path(__file__).parent / "packs_extra" / "surface_pack"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("surface-server")
    shutil.copytree(PACK, base / "custom_nodes" / "surface_pack", ignore=shutil.ignore_patterns("__pycache__"))
    srv = Server(base_dir=base).start()
    yield srv
    srv.stop()


def run_graph(server: Server, graph: dict) -> tuple[dict, list]:
    client_id = new_id()
    client = Client(server, client_id)
    try:
        prompt_id = queue_prompt(server, graph, client_id)
        messages = client.until_done(prompt_id)
    finally:
        client.close()
    return server.wait_for_job(prompt_id), messages


def test_the_pack_loads_with_every_node(server):
    info = server.get("/api/object_info").json()
    for name in ("SurfaceUpscale", "SurfaceLatentPreview", "SurfaceModelBits", "SurfacePlaceholderCall"):
        assert info[name]["python_module"] == "custom_nodes.surface_pack", name


def test_upscale_and_tiling_report_progress_per_tile(server):
    graph = {"1": {"class_type": "EmptyImage",
                   "inputs": {"width": 12, "height": 10, "batch_size": 1, "color": 0xFF8000}},
             "2": {"class_type": "SurfaceUpscale", "inputs": {"image": ["1", 0], "tile": 8}},
             "3": {"class_type": "PreviewAny", "inputs": {"source": ["2", 1]}},
             "4": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}}}
    entry, messages = run_graph(server, graph)
    assert entry["status"]["status_str"] == "success", entry["status"]
    assert entry["outputs"]["3"]["text"] == ["12"]  # 24 x 20 in 8-pixel tiles overlapping by 2
    progress = [e["data"] for e in json_events(messages) if e["type"] == "progress" and e["data"]["node"] == "2"]
    assert [(p["value"], p["max"]) for p in progress] == [(i, 12) for i in range(1, 13)]
    assert entry["outputs"]["4"]["images"][0]["type"] == "temp"


def test_latent_formats_and_a_latent2rgb_preview_reach_the_client(server):
    graph = {"1": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
             "2": {"class_type": "SurfaceLatentPreview", "inputs": {"samples": ["1", 0]}},
             "3": {"class_type": "PreviewAny", "inputs": {"source": ["2", 0]}}}
    entry, messages = run_graph(server, graph)
    assert entry["status"]["status_str"] == "success", entry["status"]
    assert entry["outputs"]["3"]["text"] == ["0.13025 [0.3651, 0.4232, 0.4341] taesdxl_decoder 128"]
    previews = [m for m in messages if isinstance(m, bytes) and binary_type(m) in (1, 4)]
    assert previews, "the ProgressBar preview did not reach the websocket"
    assert b"\xff\xd8" in previews[0][:200]  # a JPEG


def test_model_sampling_ops_lora_and_extras_helpers_run(server):
    graph = {"1": {"class_type": "SurfaceModelBits", "inputs": {"shift": 3.0}},
             "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}}
    entry, _ = run_graph(server, graph)
    assert entry["status"]["status_str"] == "success", entry["status"]
    words = entry["outputs"]["2"]["text"][0].split()
    assert words[:9] == ["0.75", "torch.float32", "torch.float16", "lora", "(1,", "1,", "3,", "1,", "1)"]
    assert words[9:14] == ["12.0", "(1,", "4,", "2,", "2)"]
    assert words[14:16] == ["ModelType.FLOW", ".bmp"] and words[16].endswith("surface_pack.PackAttention")


@pytest.mark.parametrize("which,symbol", [
    ("attention", "comfy.ldm.modules.attention.optimized_attention"),
    ("wan_conv", "comfy.ldm.wan.vae.CausalConv3d"),
    ("subclass", "comfy.ldm.lightricks.vae.causal_video_autoencoder.Decoder"),
])
def test_calling_a_placeholder_fails_the_node_naming_the_symbol(server, which, symbol):
    graph = {"1": {"class_type": "SurfacePlaceholderCall", "inputs": {"which": which}},
             "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}}
    entry, messages = run_graph(server, graph)
    assert entry["status"]["status_str"] == "error"
    errors = [e["data"] for e in json_events(messages) if e["type"] == "execution_error"]
    assert errors and errors[0]["node_id"] == "1"
    assert errors[0]["exception_type"].endswith("ModelBackendUnavailable")
    assert symbol in errors[0]["exception_message"]
