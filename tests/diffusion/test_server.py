"""The frontend's default text-to-image workflow over HTTP against a real server."""

from __future__ import annotations

import io
import shutil

import pytest
from PIL import Image

from tests.harness import Server


def default_workflow(ckpt_name: str, *, width: int = 64, height: int = 48, steps: int = 3,
                     seed: int = 156680208700286) -> dict:
    """The graph the frontend opens by default (same node ids and inputs), smaller and shorter."""
    return {
        "3": {"class_type": "KSampler", "inputs": {
            "seed": seed, "steps": steps, "cfg": 8, "sampler_name": "euler", "scheduler": "normal",
            "denoise": 1, "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0],
            "latent_image": ["5", 0]}},
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt_name}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": width, "height": height, "batch_size": 1}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {
            "text": "beautiful scenery nature glass bottle landscape, , purple galaxy bottle,",
            "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "text, watermark", "clip": ["4", 1]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "ComfyUI", "images": ["8", 0]}},
    }


@pytest.fixture(scope="module")
def diffusion_server(tmp_path_factory, tiny_checkpoint):
    base = tmp_path_factory.mktemp("diffusion-server")
    checkpoints = base / "models" / "checkpoints"
    checkpoints.mkdir(parents=True)
    shutil.copy(tiny_checkpoint[0], checkpoints / "tiny_sd1.safetensors")
    srv = Server(base_dir=base).start()
    yield srv
    srv.stop()


def _png(server: Server, image: dict) -> Image.Image:
    r = server.get(f"/api/view?filename={image['filename']}&subfolder={image['subfolder']}"
                   f"&type={image['type']}")
    assert r.status == 200
    return Image.open(io.BytesIO(r.body))


def test_model_nodes_and_checkpoints_in_object_info(diffusion_server):
    info = diffusion_server.get("/api/object_info/CheckpointLoaderSimple").json()["CheckpointLoaderSimple"]
    assert info["input"]["required"]["ckpt_name"][0] == ["tiny_sd1.safetensors"]
    assert info["output"] == ["MODEL", "CLIP", "VAE"]
    assert info["python_module"] == "nodes"
    ksampler = diffusion_server.get("/api/object_info/KSampler").json()["KSampler"]
    assert "euler" in ksampler["input"]["required"]["sampler_name"][0]
    assert "karras" in ksampler["input"]["required"]["scheduler"][0]


def test_default_workflow_makes_a_png_of_the_requested_size(diffusion_server):
    r = diffusion_server.post("/api/prompt", {"prompt": default_workflow("tiny_sd1.safetensors"),
                                              "client_id": "diffusion-test"})
    assert r.status == 200, r.body
    entry = diffusion_server.wait_for_job(r.json()["prompt_id"], timeout=120)
    assert entry["status"]["status_str"] == "success", entry["status"]
    images = entry["outputs"]["9"]["images"]
    assert len(images) == 1
    png = _png(diffusion_server, images[0])
    assert png.size == (64, 48)
    pixels = list(png.convert("L").getdata())
    assert max(pixels) - min(pixels) > 10      # an image, not a flat fill


def test_same_seed_gives_the_same_image(diffusion_server):
    results = []
    for _ in range(2):
        workflow = default_workflow("tiny_sd1.safetensors", seed=7)
        r = diffusion_server.post("/api/prompt", {"prompt": workflow})
        entry = diffusion_server.wait_for_job(r.json()["prompt_id"], timeout=120)
        results.append(_png(diffusion_server, entry["outputs"]["9"]["images"][0]).tobytes())
    assert results[0] == results[1]


def test_a_checkpoint_added_while_running_can_be_used(diffusion_server, tiny_checkpoint):
    target = diffusion_server.base_dir / "models" / "checkpoints" / "sub" / "added.safetensors"
    target.parent.mkdir()
    shutil.copy(tiny_checkpoint[0], target)
    info = diffusion_server.get("/api/object_info/CheckpointLoaderSimple").json()["CheckpointLoaderSimple"]
    assert info["input"]["required"]["ckpt_name"][0] == ["sub/added.safetensors", "tiny_sd1.safetensors"]
    r = diffusion_server.post("/api/prompt", {"prompt": default_workflow("sub/added.safetensors")})
    assert r.status == 200, r.body
    entry = diffusion_server.wait_for_job(r.json()["prompt_id"], timeout=120)
    assert entry["status"]["status_str"] == "success", entry["status"]


def test_unknown_checkpoint_is_a_validation_error(diffusion_server):
    r = diffusion_server.post("/api/prompt", {"prompt": default_workflow("missing.safetensors")})
    assert r.status == 400
    body = r.json()
    assert body["error"]["type"] == "prompt_outputs_failed_validation"
    assert "4" in body["node_errors"]


def test_progress_per_step_and_latent_previews_over_the_websocket(diffusion_server):
    from tests.server.wsutil import Client, binary_type, new_id, queue_prompt

    client_id = new_id()
    client = Client(diffusion_server, client_id)
    try:
        workflow = default_workflow("tiny_sd1.safetensors", steps=4, seed=11)
        prompt_id = queue_prompt(diffusion_server, workflow, client_id,
                                 extra_data={"preview_method": "latent2rgb"})
        messages = client.until_done(prompt_id, timeout=120)
    finally:
        client.close()
    progress = [m["data"] for m in messages if isinstance(m, dict) and m["type"] == "progress"
                and m["data"]["node"] == "3"]
    assert [(p["value"], p["max"]) for p in progress] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    previews = [m for m in messages if isinstance(m, bytes) and binary_type(m) in (1, 4)]
    # Previews are throttled to a share of the sampling time; the last step always has one.
    assert 1 <= len(previews) <= 4


def test_interrupt_stops_sampling_between_steps(diffusion_server):
    from tests.server.wsutil import Client, new_id, queue_prompt

    client_id = new_id()
    client = Client(diffusion_server, client_id)
    try:
        workflow = default_workflow("tiny_sd1.safetensors", steps=10000, seed=12)
        prompt_id = queue_prompt(diffusion_server, workflow, client_id)
        client.until(lambda m: isinstance(m, dict) and m["type"] == "progress"
                     and m["data"]["node"] == "3", timeout=120)
        assert diffusion_server.post("/api/interrupt", {}).status == 200
        messages = client.until_done(prompt_id, timeout=60)
    finally:
        client.close()
    types = [m["type"] for m in messages if isinstance(m, dict)]
    assert "execution_interrupted" in types
    steps_done = max(m["data"]["value"] for m in client.messages
                     if isinstance(m, dict) and m["type"] == "progress" and m["data"]["node"] == "3")
    assert steps_done < 10000
