"""Hooks: a LoRA hook on the positive conditioning, keyframed, changes the prediction only from
its start percent and only for the conditioning it is attached to; default conditioning; one
hook graph over HTTP."""

from __future__ import annotations

import shutil

import pytest
import torch

from opencomfy.diffusion.conditioning import predict, resolve
from opencomfy.diffusion.hooks import HookKeyframe, HookKeyframeGroup, interpolation_weights, keyframe_strength
from opencomfy.diffusion.memory import models_in_use
from opencomfy.nodes import diffusion_conditioning as cn
from opencomfy.nodes import hooks as hn
from opencomfy.nodes import hooks_conditioning as hc
from tests.harness import Server

LDM_PROJ = "input_blocks.1.1.proj_in"


def _lora() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    base = "lora_unet_" + LDM_PROJ.replace(".", "_")
    return {base + ".lora_down.weight": torch.randn(4, 32, generator=g),
            base + ".lora_up.weight": torch.randn(32, 4, generator=g)}


@pytest.fixture
def lora_folder(tmp_path, monkeypatch):
    from safetensors.torch import save_file

    from opencomfy.compat import folder_paths

    folder = tmp_path / "loras"
    folder.mkdir()
    save_file(_lora(), str(folder / "hook.safetensors"))
    monkeypatch.setitem(folder_paths.folder_names_and_paths, "loras",
                        ([str(folder)], folder_paths.supported_pt_extensions))
    folder_paths.filename_list_cache.pop("loras", None)
    yield folder
    folder_paths.filename_list_cache.pop("loras", None)


def _hooks(start: float):
    hooks = hn.CreateHookLoraModelOnly().create_hook_model_only("hook.safetensors", 1.0)[0]
    kf = hn.CreateHookKeyframe().create_hook_keyframe(0.0, 0.0)[0]
    kf = hn.CreateHookKeyframe().create_hook_keyframe(1.0, start, kf)[0]
    return hn.SetHookKeyframes().set_hook_keyframes(hooks, kf)[0]


def test_hook_applies_from_its_start_percent_and_only_to_its_conditioning(tiny_models, lora_folder):
    model, clip, _ = tiny_models
    pos = cn.CLIPTextEncode().encode(clip, "a cat")[0]
    neg = cn.CLIPTextEncode().encode(clip, "")[0]
    hooked = hc.ConditioningSetProperties().run(pos, 1.0, "default", hooks=_hooks(0.5))[0]
    schedule = model.schedule
    sigmas = [schedule.percent_to_sigma(p) for p in (0.1, 0.3, 0.6, 0.9)]
    x = torch.randn(1, 4, 4, 4, generator=torch.Generator().manual_seed(0))

    def run(positive):
        plans: dict = {}
        sets = [resolve(positive, schedule=schedule, height=4, width=4),
                resolve(neg, schedule=schedule, height=4, width=4)]
        with models_in_use(model):
            return [predict(model, x * s, s, sets, plans) for s in sigmas]

    plain, with_hook = run(pos), run(hooked)
    # (hooked entries run in their own UNet batch: equal up to float rounding)
    for step in (0, 1):     # before 50 %: the keyframe's strength is 0
        torch.testing.assert_close(plain[step][0], with_hook[step][0], rtol=1e-4, atol=1e-4)
    for step in (2, 3):     # from 50 % on: the LoRA changes the positive prediction ...
        assert (plain[step][0] - with_hook[step][0]).abs().max() > 1e-2
        torch.testing.assert_close(plain[step][1], with_hook[step][1], rtol=1e-4, atol=1e-4)  # ... not the negative
    # and the weights are back afterwards
    assert torch.equal(run(pos)[3][0], plain[3][0])


def test_keyframes_hold_their_guaranteed_steps():
    class Schedule:
        @staticmethod
        def percent_to_sigma(p):
            return 10.0 * (1.0 - p)

    from opencomfy.diffusion.hooks import _KeyframeState

    group = HookKeyframeGroup()
    group.add(HookKeyframe(0.5, 0.0))
    group.add(HookKeyframe(2.0, 0.2, guarantee_steps=1))
    group.add(HookKeyframe(3.0, 0.4, guarantee_steps=1))
    state = _KeyframeState()
    # The first step holds the first keyframe; each later keyframe is held one step at least.
    assert [keyframe_strength(group, s, Schedule, state) for s in (10.0, 5.0, 4.0, 1.0)] == [0.5, 2.0, 3.0, 3.0]
    assert keyframe_strength(group, 5.0, Schedule, None) == 3.0
    assert interpolation_weights(0.0, 1.0, 3, "ease_in") == [0.0, 0.25, 1.0]


def test_default_conditioning_fills_only_what_is_uncovered(tiny_models):
    model, clip, _ = tiny_models
    pos = cn.CLIPTextEncode().encode(clip, "a cat")[0]
    other = cn.CLIPTextEncode().encode(clip, "a dog")[0]
    schedule = model.schedule
    x = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    sigma = schedule.percent_to_sigma(0.3)

    def run(cond):
        with models_in_use(model):
            return predict(model, x * sigma, sigma, [resolve(cond, schedule=schedule, height=8, width=8)], {})[0]

    full = hc.ConditioningSetDefaultCombine().run(pos, other)[0]
    torch.testing.assert_close(run(full), run(pos))          # covered everywhere: default unused
    left = cn.ConditioningSetArea().append(pos, 32, 64, 0, 0, 1.0)[0]
    with_default = hc.ConditioningSetDefaultCombine().run(left, other)[0]
    assert not torch.allclose(run(with_default), run(left))


def test_timesteps_range_and_pair_nodes(tiny_models):
    clip = tiny_models[1]
    a = cn.CLIPTextEncode().encode(clip, "a")[0]
    b = cn.CLIPTextEncode().encode(clip, "b")[0]
    rng, before, after = hc.ConditioningTimestepsRange().run(0.2, 0.7)
    assert (rng, before, after) == ((0.2, 0.7), (0.0, 0.2), (0.7, 1.0))
    p, n = hc.PairConditioningSetPropertiesAndCombine().run(a, b, a, b, 1.0, "default", timesteps=rng)
    assert len(p) == 2 and p[1][1]["start_percent"] == 0.2 and "start_percent" not in p[0][1]
    p2, n2 = hc.PairConditioningCombine().run(a, b, p, n)
    assert len(p2) == 3 and len(n2) == 3


@pytest.fixture(scope="module")
def hook_server(tmp_path_factory, tiny_checkpoint):
    from safetensors.torch import save_file

    base = tmp_path_factory.mktemp("hook-server")
    (base / "models" / "checkpoints").mkdir(parents=True)
    (base / "models" / "loras").mkdir(parents=True)
    shutil.copy(tiny_checkpoint[0], base / "models" / "checkpoints" / "tiny.safetensors")
    save_file(_lora(), str(base / "models" / "loras" / "hook.safetensors"))
    srv = Server(base_dir=base).start()
    yield srv
    srv.stop()


def _graph(with_hook: bool) -> dict:
    graph = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny.safetensors"}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["1", 1]}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["1", 1]}},
        "4": {"class_type": "EmptyLatentImage", "inputs": {"width": 32, "height": 32, "batch_size": 1}},
        "5": {"class_type": "KSampler", "inputs": {
            "seed": 1, "steps": 3, "cfg": 5.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0,
            "model": ["1", 0], "positive": ["2", 0], "negative": ["3", 0], "latent_image": ["4", 0]}},
        "6": {"class_type": "SaveLatent", "inputs": {"samples": ["5", 0], "filename_prefix": "latents/hooks"}},
    }
    if with_hook:
        graph.update({
            "10": {"class_type": "CreateHookLora", "inputs": {"lora_name": "hook.safetensors",
                                                               "strength_model": 1.0, "strength_clip": 0.0}},
            "11": {"class_type": "CreateHookKeyframesInterpolated", "inputs": {
                "strength_start": 0.0, "strength_end": 1.0, "interpolation": "linear", "start_percent": 0.0,
                "end_percent": 0.5, "keyframes_count": 3, "print_keyframes": False}},
            "12": {"class_type": "SetHookKeyframes", "inputs": {"hooks": ["10", 0], "hook_kf": ["11", 0]}},
            "13": {"class_type": "ConditioningSetProperties", "inputs": {
                "cond_NEW": ["2", 0], "strength": 1.0, "set_cond_area": "default", "hooks": ["12", 0]}},
        })
        graph["5"]["inputs"]["positive"] = ["13", 0]
    return graph


def test_hook_graph_over_http(hook_server):
    from safetensors.torch import load_file

    results = []
    for with_hook in (False, True):
        r = hook_server.post("/api/prompt", {"prompt": _graph(with_hook)})
        assert r.status == 200, r.body
        entry = hook_server.wait_for_job(r.json()["prompt_id"], timeout=120)
        assert entry["status"]["status_str"] == "success", entry["status"]
        name = entry["outputs"]["6"]["latents"][0]["filename"]
        results.append(load_file(str(hook_server.base_dir / "output" / "latents" / name))["latent_tensor"])
    assert not torch.allclose(results[0], results[1])
