"""Every sampler name of KSampler's list runs end to end over HTTP (2 steps, tiny checkpoint)
and gives the image that the same graph gives in process."""

from __future__ import annotations

import io
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from opencomfy.compat.comfy.samplers import SAMPLER_NAMES
from tests.diffusion.test_server import default_workflow
from tests.harness import Server

SEED, STEPS = 1234, 2


@pytest.fixture(scope="module")
def sampler_runs(tmp_path_factory, tiny_checkpoint):
    """{sampler name: history entry}, every name queued at once on one server."""
    base = tmp_path_factory.mktemp("samplers-server")
    checkpoints = base / "models" / "checkpoints"
    checkpoints.mkdir(parents=True)
    shutil.copy(tiny_checkpoint[0], checkpoints / "tiny_sd1.safetensors")
    srv = Server(base_dir=base).start()
    try:
        ids = {}
        for name in SAMPLER_NAMES:
            workflow = default_workflow("tiny_sd1.safetensors", steps=STEPS, seed=SEED)
            workflow["3"]["inputs"]["sampler_name"] = name
            workflow["3"]["inputs"]["scheduler"] = "karras"
            workflow["9"]["inputs"]["filename_prefix"] = name
            r = srv.post("/api/prompt", {"prompt": workflow})
            assert r.status == 200, (name, r.body)
            ids[name] = r.json()["prompt_id"]
        entries = {name: srv.wait_for_job(pid, timeout=300) for name, pid in ids.items()}
        images = {}
        for name, entry in entries.items():
            assert entry["status"]["status_str"] == "success", (name, entry["status"])
            image = entry["outputs"]["9"]["images"][0]
            r = srv.get(f"/api/view?filename={image['filename']}&subfolder={image['subfolder']}"
                        f"&type={image['type']}")
            assert r.status == 200
            images[name] = np.asarray(Image.open(io.BytesIO(r.body)).convert("RGB")).astype(int)
        yield images
    finally:
        srv.stop()


def _in_process(tiny_models, name: str) -> np.ndarray:
    from opencomfy.nodes.diffusion_sampling import common_ksampler
    from opencomfy.nodes.diffusion_conditioning import CLIPTextEncode
    from opencomfy.nodes.diffusion_vae import VAEDecode

    model, clip, vae = tiny_models
    inputs = default_workflow("x", steps=STEPS, seed=SEED)
    positive = CLIPTextEncode().encode(clip, inputs["6"]["inputs"]["text"])[0]
    negative = CLIPTextEncode().encode(clip, inputs["7"]["inputs"]["text"])[0]
    latent = {"samples": torch.zeros(1, 4, 48 // 8, 64 // 8)}
    out = common_ksampler(model, SEED, STEPS, 8.0, name, "karras", positive, negative, latent)
    pixels = VAEDecode().decode(vae, out)[0][0]
    return (pixels.clamp(0, 1) * 255).round().to(torch.uint8).numpy().astype(int)


@pytest.mark.slow
@pytest.mark.parametrize("name", SAMPLER_NAMES)
def test_sampler_over_http_matches_the_same_graph_in_process(sampler_runs, tiny_models, name):
    got = sampler_runs[name]
    assert got.shape == (48, 64, 3)
    assert got.max() - got.min() > 10                  # an image, not a flat fill
    assert np.abs(got - _in_process(tiny_models, name)).max() <= 1


def test_the_names_reach_different_algorithms(tiny_models):
    """(The tiny random VAE maps most latents to nearly the same image, so this compares the
    latents.) The stochastic and higher-order samplers differ from plain Euler after two steps."""
    from opencomfy.nodes.diffusion_sampling import common_ksampler
    from opencomfy.nodes.diffusion_conditioning import CLIPTextEncode

    model, clip, _ = tiny_models
    positive, negative = CLIPTextEncode().encode(clip, "a")[0], CLIPTextEncode().encode(clip, "b")[0]

    def latent(name):
        return common_ksampler(model, SEED, STEPS, 8.0, name, "karras", positive, negative,
                               {"samples": torch.zeros(1, 4, 4, 4)})["samples"]

    euler = latent("euler")
    for name in ("euler_ancestral", "dpmpp_2m_sde", "dpmpp_sde", "lcm", "er_sde", "seeds_2", "heun",
                 "uni_pc", "dpm_adaptive"):   # (2-step sa_solver is Euler: its corrector has no say)
        assert (latent(name) - euler).abs().max() > 1e-3, name
