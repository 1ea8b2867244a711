"""SamplerEulerCFGpp, SamplerLCMUpscale and the video CFG ramps: direct results, then one HTTP
graph over the tiny SD 1.x checkpoint."""

from __future__ import annotations

import shutil

import pytest
import torch
from PIL import Image

from opencomfy.nodes import sampling_extra as se
from tests.harness import Server

CKPT = "tiny_sd1.safetensors"


class _Denoise:
    """A fake guided denoiser: x0 = x * factor, with a chosen unguided prediction."""

    def __init__(self, factor: float, uncond_factor: float):
        self.factor, self.uncond_factor, self.last_uncond = factor, uncond_factor, None

    def __call__(self, x, sigma):
        self.last_uncond = x * self.uncond_factor
        return x * self.factor


def test_euler_cfgpp_versions():
    regular = se.SamplerEulerCFGpp().get_sampler("regular")[0]
    assert regular.name == "euler_cfg_pp" and regular.native
    alternative = se.SamplerEulerCFGpp().get_sampler("alternative")[0]
    assert alternative.sampler_function is se.euler_cfg_pp_alternative
    with pytest.raises(ValueError, match="version"):
        se.SamplerEulerCFGpp().get_sampler("other")


def test_euler_cfgpp_alternative_steps():
    x = torch.ones(1, 4, 2, 2)
    sigmas = torch.tensor([2.0, 1.0, 0.0])
    # Guided == unguided: the direction is (x - x0) / sigma, plain Euler.
    out = se.euler_cfg_pp_alternative(_Denoise(0.5, 0.5), x, sigmas)
    # step 1: x=1, x0=.5, d=.25, x=1-.25=.75; step 2: x0=.375, d=.375, x=.75-.375=.375
    assert torch.allclose(out, torch.full_like(x, 0.375))
    # Guided 0.5, unguided 0.25: d = (x - 1.0x + 0.25x) / s = 0.25 x / s.
    out = se.euler_cfg_pp_alternative(_Denoise(0.5, 0.25), x, torch.tensor([2.0, 1.0]))
    assert torch.allclose(out, torch.full_like(x, 1 - 0.125))


def test_lcm_upscale_sizes():
    # Default: about half the steps; 4 steps -> 3 points -> factors 1.5, 2.
    assert se.lcm_upscale_sizes(8, 8, 4, 2.0, None) == [(12, 12), (16, 16)]
    # Two enlargements asked for, at most steps + 2 points.
    assert se.lcm_upscale_sizes(8, 10, 4, 3.0, 2) == [(16, 20), (24, 30)]
    assert len(se.lcm_upscale_sizes(8, 8, 2, 2.0, 10)) == 3
    assert se.lcm_upscale_sizes(8, 8, 4, 1.0, None) == [(8, 8), (8, 8)]


def test_lcm_upscale_sampler_grows_latent():
    sampler = se.SamplerLCMUpscale().get_sampler(2.0, -1, "bilinear")[0]
    assert sampler.extra_options == {"total_upscale": 2.0, "upscale_method": "bilinear", "upscale_steps": None}
    steps = []

    def model(x, sigma, **_):
        return x * 0.5

    out = se.sample_lcm_upscale(model, torch.ones(1, 4, 8, 8), torch.tensor([3.0, 2.0, 1.0, 0.5, 0.0]),
                                extra_args={"seed": 1}, callback=lambda info: steps.append(info["x"].shape),
                                total_upscale=2.0, upscale_method="bilinear")
    assert out.shape == (1, 4, 16, 16)
    assert [s[-1] for s in steps] == [8, 12, 16, 16]
    # The last step lands on sigma 0: no noise, exactly the (constant) x0.
    again = se.sample_lcm_upscale(model, torch.ones(1, 4, 8, 8), torch.tensor([3.0, 0.0]),
                                  total_upscale=2.0, upscale_method="nearest-exact", upscale_steps=1)
    assert torch.equal(again, torch.full((1, 4, 16, 16), 0.5))
    with pytest.raises(ValueError, match="upscale_method"):
        se.SamplerLCMUpscale().get_sampler(2.0, -1, "lanczos2")


def test_cfg_scale_ramps():
    assert torch.allclose(se.linear_cfg_scales(3, 1.0, 5.0), torch.tensor([1.0, 3.0, 5.0]))
    assert torch.allclose(se.triangle_cfg_scales(5, 1.0, 5.0), torch.tensor([1.0, 3.0, 5.0, 3.0, 1.0]))


@pytest.mark.parametrize("node, scales", [(se.VideoLinearCFGGuidance, [2.0, 4.0, 6.0]),
                                          (se.VideoTriangleCFGGuidance, [2.0, 6.0, 2.0])])
def test_video_cfg_patch(tiny_models, node, scales):
    model = tiny_models[0]
    (patched,) = node().patch(model, 2.0)
    assert "sampler_cfg_function" not in model.model_options
    fn = patched.model_options["sampler_cfg_function"]
    cond, uncond = torch.ones(3, 4, 2, 2), torch.zeros(3, 4, 2, 2)
    out = fn({"cond": cond, "uncond": uncond, "cond_scale": 6.0})
    assert torch.allclose(out[:, 0, 0, 0], torch.tensor(scales))


# -- over HTTP ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_checkpoint):
    base = tmp_path_factory.mktemp("sampling-extra-server")
    checkpoints = base / "models" / "checkpoints"
    checkpoints.mkdir(parents=True)
    shutil.copy(tiny_checkpoint[0], checkpoints / CKPT)
    srv = Server(base_dir=base).start()
    yield srv
    srv.stop()


def _images(server: Server, graph: dict) -> dict[str, Image.Image]:
    return {node_id[:-len("_save")]: image
            for node_id, image in server.saved_images(graph, timeout=240).items()}


def test_sampling_extra_over_http(server):
    graph = {
        "ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": CKPT}},
        "pos": {"class_type": "CLIPTextEncode", "inputs": {"text": "a lighthouse", "clip": ["ckpt", 1]}},
        "neg": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["ckpt", 1]}},
        "latent": {"class_type": "EmptyLatentImage", "inputs": {"width": 32, "height": 32, "batch_size": 2}},
        "sigmas": {"class_type": "BasicScheduler", "inputs": {"model": ["ckpt", 0], "scheduler": "normal",
                                                              "steps": 2, "denoise": 1.0}},
        "lcm": {"class_type": "SamplerLCMUpscale", "inputs": {"scale_ratio": 1.5, "scale_steps": -1,
                                                              "upscale_method": "bislerp"}},
        "regular": {"class_type": "SamplerEulerCFGpp", "inputs": {"version": "regular"}},
        "alternative": {"class_type": "SamplerEulerCFGpp", "inputs": {"version": "alternative"}},
        "linear": {"class_type": "VideoLinearCFGGuidance", "inputs": {"model": ["ckpt", 0], "min_cfg": 1.0}},
        "triangle": {"class_type": "VideoTriangleCFGGuidance", "inputs": {"model": ["ckpt", 0], "min_cfg": 1.0}},
    }
    runs = {"lcm": (["ckpt", 0], "lcm"), "regular": (["ckpt", 0], "regular"),
            "alternative": (["ckpt", 0], "alternative"), "base": (["ckpt", 0], "regular"),
            "linear": (["linear", 0], "regular"), "triangle": (["triangle", 0], "regular")}
    for name, (model, sampler) in runs.items():
        graph[f"{name}_run"] = {"class_type": "SamplerCustom", "inputs": {
            "model": model, "add_noise": True, "noise_seed": 3, "cfg": 5.0, "positive": ["pos", 0],
            "negative": ["neg", 0], "sampler": [sampler, 0], "sigmas": ["sigmas", 0],
            "latent_image": ["latent", 0]}}
        graph[f"{name}_dec"] = {"class_type": "VAEDecode", "inputs": {"samples": [f"{name}_run", 0],
                                                                      "vae": ["ckpt", 2]}}
        graph[f"{name}_save"] = {"class_type": "SaveImage", "inputs": {"filename_prefix": name,
                                                                       "images": [f"{name}_dec", 0]}}
    images = _images(server, graph)
    # 2 steps: 2 points, one enlargement straight to 1.5x (latent 4 -> 6, image 32 -> 48).
    assert images["lcm"].size == (48, 48)
    assert images["regular"].size == (32, 32)
    assert images["regular"].tobytes() == images["base"].tobytes()
    assert images["alternative"].tobytes() != images["regular"].tobytes()
    # The saved image is the batch's first entry: linear starts at min_cfg 1, the triangle too.
    assert images["linear"].tobytes() != images["regular"].tobytes()
    assert images["triangle"].tobytes() != images["regular"].tobytes()
