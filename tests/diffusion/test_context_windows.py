"""Context windows: schedules, fuse weights, the windowed model call, and one HTTP graph."""

from __future__ import annotations

import io
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from opencomfy.diffusion.context_windows import ContextWindows
from opencomfy.nodes.context_windows import ContextWindowsManual, WanContextWindowsManual
from opencomfy.nodes.diffusion_sampling import common_ksampler
from tests.harness import Server

CKPT = "tiny_sd1.safetensors"


def _call(cw: ContextWindows, fn, x, pieces: int = 1):
    """Run ``fn(x, t, ...)`` through the wrapper as apply_model would."""
    from opencomfy.diffusion.patcher_extension import WrapperExecutor

    t = torch.full((x.shape[0],), 3.0)
    executor = WrapperExecutor.new_executor(fn, [cw.apply_model_wrapper])
    return executor.execute(x, t, None, torch.zeros(x.shape[0], 2, 3), None,
                            {"cond_or_uncond": list(range(pieces)), "sigmas": t})


def test_schedules():
    static = ContextWindows(length=4, overlap=2, schedule="standard_static")
    assert static.windows(10) == [[0, 1, 2, 3], [2, 3, 4, 5], [4, 5, 6, 7], [6, 7, 8, 9]]
    assert static.windows(9)[-1] == [5, 6, 7, 8] and static.windows(3) == [[0, 1, 2]]
    assert ContextWindows(length=4, overlap=0, schedule="batched").windows(10) == [
        [0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    for step in range(4):
        uniform = ContextWindows(length=4, overlap=1, schedule="standard_uniform", stride=2).windows(11, step)
        assert set().union(*uniform) == set(range(11))
        assert all(len(w) == 4 and 0 <= min(w) and max(w) < 11 for w in uniform)
        looped = ContextWindows(length=4, overlap=1, schedule="looped_uniform").windows(11, step)
        assert set().union(*looped) == set(range(11))
    with pytest.raises(ValueError, match="'spiral'"):
        ContextWindows(length=4, overlap=1, schedule="spiral")
    with pytest.raises(ValueError, match="smaller than context_length"):
        ContextWindows(length=4, overlap=4, schedule="standard_static")


def test_fuse_weights_and_two_window_blend():
    cw = ContextWindows(length=4, overlap=2, schedule="standard_static", fuse="pyramid")
    assert cw.weights([0, 1, 2, 3], 6).tolist() == [1, 2, 2, 1]
    assert cw.weights([0, 1, 2, 3, 4], 6).tolist() == [1, 2, 3, 2, 1]
    assert ContextWindows(length=4, overlap=2, schedule="standard_static", fuse="flat").weights([0, 1, 2, 3], 6
                                                                                             ).tolist() == [1] * 4
    linear = ContextWindows(length=4, overlap=2, schedule="standard_static", fuse="overlap-linear")
    assert linear.weights([0, 1, 2, 3], 6).tolist() == [1, 1, 1, pytest.approx(0)]
    rel = ContextWindows(length=4, overlap=2, schedule="standard_static", fuse="relative").weights([2, 3, 4, 5], 6)
    assert rel.tolist() == pytest.approx([0.01, 1 - 0.5 / 1.505, 1 - 0.5 / 1.505, 0.01])
    # Two windows over 6 frames: [0..3] predicts 1, [2..5] predicts 2 (told apart by the input).
    calls = []

    def fn(x, t, c_concat, c_crossattn, control, options):
        calls.append(x[:, 0, 0].tolist())
        return torch.full_like(x, 1.0 if x[0, 0, 0] == 0 else 2.0)

    out = _call(cw, fn, torch.arange(6.0).reshape(6, 1, 1).expand(6, 2, 2).clone())
    assert calls == [[0, 1, 2, 3], [2, 3, 4, 5]]
    expected = [1, 1, (2 * 1 + 1 * 2) / 3, (1 * 1 + 2 * 2) / 3, 2, 2]
    assert out[:, 0, 0].tolist() == pytest.approx(expected)


@pytest.mark.parametrize("schedule", ["standard_static", "standard_uniform", "looped_uniform", "batched"])
@pytest.mark.parametrize("fuse", ["pyramid", "relative", "flat", "overlap-linear"])
def test_per_frame_model_is_unchanged(schedule, fuse):
    def fn(x, t, c_concat, c_crossattn, control, options):
        assert c_crossattn is None or c_crossattn.shape[0] == x.shape[0]
        return x * 2 + 1

    cw = ContextWindows(length=3, overlap=1, schedule=schedule, fuse=fuse, stride=2, dim=2)
    x = torch.randn(2, 3, 10, 2, 2)
    assert torch.allclose(_call(cw, fn, x), fn(x, None, None, None, None, None), atol=1e-6)
    # Along the batch with cond and uncond stacked: each half is windowed alike.
    batch = ContextWindows(length=3, overlap=1, schedule=schedule, fuse=fuse, dim=0)
    x = torch.randn(14, 4, 2, 2)
    assert torch.allclose(_call(batch, fn, x, pieces=2), x * 2 + 1, atol=1e-6)


def test_one_window_is_exact_and_batch_windows_match(tiny_models, monkeypatch):
    model = tiny_models[0]
    seen = []
    original = ContextWindows.windows
    monkeypatch.setattr(ContextWindows, "windows", lambda self, *a: seen.append(original(self, *a)) or seen[-1])
    from opencomfy.nodes.diffusion_conditioning import CLIPTextEncode

    pos = CLIPTextEncode().encode(tiny_models[1], "a cat")[0]
    neg = CLIPTextEncode().encode(tiny_models[1], "blurry")[0]
    latent = {"samples": torch.zeros(3, 4, 8, 8)}

    def sample(m):
        return common_ksampler(m, 7, 3, 5.0, "euler", "normal", pos, neg, latent)["samples"]

    plain = sample(model)
    whole = ContextWindowsManual().execute(model, 16, 4, "standard_static", 1, False, "pyramid", 0)[0]
    assert torch.equal(sample(whole), plain)
    # The SD UNet treats batch items apart, so windows over the batch give the same result.
    windowed = ContextWindowsManual().execute(model, 2, 1, "standard_uniform", 1, False, "pyramid", 0)[0]
    assert torch.allclose(sample(windowed), plain, atol=1e-4)
    assert seen and all(len(w) > 1 for w in seen)   # cond and uncond windowed at every step
    with pytest.raises(ValueError, match="dim 5"):
        sample(ContextWindowsManual().execute(model, 2, 1, "standard_static", 1, False, "flat", 5)[0])


def test_wan_node_converts_frames():
    wan = WanContextWindowsManual()
    calls = []

    class Model:
        def clone(self):
            return self

        def remove_wrappers_with_key(self, *_):
            pass

        def add_wrapper_with_key(self, kind, key, fn):
            calls.append(fn.__self__)

    wan.execute(Model(), 81, 30, "standard_static", 1, False, "pyramid")
    assert (calls[0].length, calls[0].overlap, calls[0].dim) == (21, 8, 2)


# -- over HTTP ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_checkpoint):
    base = tmp_path_factory.mktemp("context-windows-server")
    (base / "models" / "checkpoints").mkdir(parents=True)
    shutil.copy(tiny_checkpoint[0], base / "models" / "checkpoints" / CKPT)
    srv = Server(base_dir=base).start()
    yield srv
    srv.stop()


def test_context_windows_over_http(server):
    graph = {
        "ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": CKPT}},
        "pos": {"class_type": "CLIPTextEncode", "inputs": {"text": "a lighthouse", "clip": ["ckpt", 1]}},
        "neg": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["ckpt", 1]}},
        "latent": {"class_type": "EmptyLatentImage", "inputs": {"width": 32, "height": 32, "batch_size": 3}},
        "cw": {"class_type": "ContextWindowsManual", "inputs": {
            "model": ["ckpt", 0], "context_length": 2, "context_overlap": 1, "context_schedule": "standard_static",
            "context_stride": 1, "closed_loop": False, "fuse_method": "pyramid", "dim": 0}},
    }
    for name, model in {"plain": ["ckpt", 0], "windowed": ["cw", 0]}.items():
        graph[f"{name}_ks"] = {"class_type": "KSampler", "inputs": {
            "model": model, "seed": 4, "steps": 2, "cfg": 5.0, "sampler_name": "euler",
            "scheduler": "normal", "positive": ["pos", 0], "negative": ["neg", 0], "latent_image": ["latent", 0],
            "denoise": 1.0}}
        graph[f"{name}_dec"] = {"class_type": "VAEDecode", "inputs": {"samples": [f"{name}_ks", 0],
                                                                      "vae": ["ckpt", 2]}}
        graph[f"{name}_save"] = {"class_type": "SaveImage", "inputs": {"filename_prefix": name,
                                                                       "images": [f"{name}_dec", 0]}}
    r = server.post("/api/prompt", {"prompt": graph})
    assert r.status == 200, r.body
    entry = server.wait_for_job(r.json()["prompt_id"], timeout=240)
    assert entry["status"]["status_str"] == "success", entry["status"]
    pixels = {}
    for node_id, output in entry["outputs"].items():
        assert len(output["images"]) == 3
        arrays = []
        for image in output["images"]:
            view = server.get(f"/api/view?filename={image['filename']}&subfolder={image['subfolder']}"
                              f"&type={image['type']}")
            arrays.append(np.asarray(Image.open(io.BytesIO(view.body)).convert("RGB"), dtype=np.int16))
        pixels[node_id[:-len("_save")]] = np.stack(arrays)
    assert np.abs(pixels["windowed"] - pixels["plain"]).max() <= 1
