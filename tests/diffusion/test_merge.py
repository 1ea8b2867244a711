"""Model and CLIP merging: the merged weights equal the hand-computed blend, block ratios touch
only their blocks, and one merge graph runs over HTTP."""

from __future__ import annotations

import shutil

import pytest
import torch

from opencomfy.diffusion.memory import models_in_use
from opencomfy.diffusion.merge import comfy_clip_name
from opencomfy.nodes import model_merging as mm
from tests.harness import Server

IN_BLOCK = "diffusion_model.input_blocks.1.1.proj_in.weight"
MID_BLOCK = "diffusion_model.middle_block.1.proj_in.weight"
OUT_BLOCK = "diffusion_model.output_blocks.3.1.proj_in.weight"
TIME = "diffusion_model.time_embed.0.weight"


@pytest.fixture(scope="module")
def second_checkpoint(tmp_path_factory):
    from opencomfy.diffusion.random_checkpoint import write_sd1_checkpoint

    path = tmp_path_factory.mktemp("ckpt-b") / "tiny_b.safetensors"
    write_sd1_checkpoint(path, "tiny", seed=5)
    return path


@pytest.fixture(scope="module")
def models_b(second_checkpoint):
    from opencomfy.diffusion.loading import load_checkpoint_file

    return load_checkpoint_file(str(second_checkpoint))


def _weights(model) -> dict[str, torch.Tensor]:
    """The weights the MODEL runs with (its patches applied), by ComfyUI key."""
    with models_in_use(model):
        return {k: v.detach().clone() for k, v in model.model_state_dict("diffusion_model.").items()}


def _clip_weights(clip) -> dict[str, torch.Tensor]:
    with models_in_use(clip):
        return {comfy_clip_name(k): v.detach().clone() for k, v in clip.model.state_dict().items()}


def test_simple_merge_is_the_weighted_sum(tiny_models, models_b):
    a, b = tiny_models[0], models_b[0]
    wa, wb = _weights(a), _weights(b)
    merged = mm.ModelMergeSimple().merge(a, b, 0.3)[0]
    wm = _weights(merged)
    for key in (IN_BLOCK, MID_BLOCK, OUT_BLOCK, TIME):
        torch.testing.assert_close(wm[key], wa[key] * 0.3 + wb[key] * 0.7)
    assert a.patches == [] and torch.equal(_weights(a)[IN_BLOCK], wa[IN_BLOCK])   # model1 unchanged


def test_add_and_subtract(tiny_models, models_b):
    a, b = tiny_models[0], models_b[0]
    wa, wb = _weights(a), _weights(b)
    added = _weights(mm.ModelMergeAdd().merge(a, b)[0])
    torch.testing.assert_close(added[IN_BLOCK], wa[IN_BLOCK] + wb[IN_BLOCK])
    diff = _weights(mm.ModelMergeSubtract().merge(b, a, 2.0)[0])
    torch.testing.assert_close(diff[OUT_BLOCK], (wb[OUT_BLOCK] - wa[OUT_BLOCK]) * 2.0)


def test_merge_of_a_model_with_its_own_patched_clone(tiny_models, models_b):
    """model2 = model1 plus a merge patch: its weights are read as it sees them."""
    a, b = tiny_models[0], models_b[0]
    wa, wb = _weights(a), _weights(b)
    half = mm.ModelMergeSimple().merge(a, b, 0.5)[0]
    merged = _weights(mm.ModelMergeSimple().merge(a, half, 0.5)[0])
    torch.testing.assert_close(merged[IN_BLOCK], wa[IN_BLOCK] * 0.75 + wb[IN_BLOCK] * 0.25)


def test_block_ratios_touch_only_their_blocks(tiny_models, models_b):
    a, b = tiny_models[0], models_b[0]
    wa, wb = _weights(a), _weights(b)
    merged = _weights(mm.ModelMergeBlocks().merge(a, b, input=0.0, middle=1.0, out=1.0)[0])
    torch.testing.assert_close(merged[IN_BLOCK], wb[IN_BLOCK])
    assert torch.equal(merged[MID_BLOCK], wa[MID_BLOCK])
    assert torch.equal(merged[OUT_BLOCK], wa[OUT_BLOCK])
    torch.testing.assert_close(merged[TIME], wb[TIME])     # no prefix matches: the first ratio

    ratios = {p: 1.0 for p in mm.ModelMergeSD1.PREFIXES}
    ratios["output_blocks.3."] = 0.25
    merged = _weights(mm.ModelMergeSD1().merge(a, b, **ratios)[0])
    torch.testing.assert_close(merged[OUT_BLOCK], wa[OUT_BLOCK] * 0.25 + wb[OUT_BLOCK] * 0.75)
    changed = [k for k in merged if not torch.equal(merged[k], wa[k])]
    assert changed and all(k.startswith("diffusion_model.output_blocks.3.") for k in changed)


def test_clip_merges(tiny_models, models_b):
    a, b = tiny_models[1], models_b[1]
    wa, wb = _clip_weights(a), _clip_weights(b)
    key = "text_model.encoder.layers.0.self_attn.q_proj.weight"
    simple = _clip_weights(mm.CLIPMergeSimple().merge(a, b, 0.25)[0])
    torch.testing.assert_close(simple[key], wa[key] * 0.25 + wb[key] * 0.75)
    added = _clip_weights(mm.CLIPMergeAdd().merge(a, b)[0])
    torch.testing.assert_close(added[key], wa[key] + wb[key])
    sub = _clip_weights(mm.CLIPMergeSubtract().merge(a, b, 0.5)[0])
    torch.testing.assert_close(sub[key], (wa[key] - wb[key]) * 0.5)
    assert torch.equal(_clip_weights(a)[key], wa[key])


def test_merge_of_different_architectures_is_refused(tiny_models, tmp_path):
    from opencomfy.diffusion.loading import load_checkpoint_file
    from opencomfy.diffusion.random_checkpoint import write_sdxl_checkpoint

    path = tmp_path / "xl.safetensors"
    write_sdxl_checkpoint(path)
    xl = load_checkpoint_file(str(path))[0]
    with pytest.raises(ValueError, match="different architectures"):
        mm.ModelMergeSimple().merge(tiny_models[0], xl, 0.5)


@pytest.fixture(scope="module")
def merge_server(tmp_path_factory, tiny_checkpoint, second_checkpoint):
    base = tmp_path_factory.mktemp("merge-server")
    checkpoints = base / "models" / "checkpoints"
    checkpoints.mkdir(parents=True)
    shutil.copy(tiny_checkpoint[0], checkpoints / "a.safetensors")
    shutil.copy(second_checkpoint, checkpoints / "b.safetensors")
    srv = Server(base_dir=base).start()
    yield srv
    srv.stop()


def test_merge_graph_over_http_saves_the_merged_weights(merge_server, tiny_models, models_b):
    from safetensors.torch import load_file

    graph = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "a.safetensors"}},
        "2": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "b.safetensors"}},
        "3": {"class_type": "ModelMergeSimple",
              "inputs": {"model1": ["1", 0], "model2": ["2", 0], "ratio": 0.4}},
        "4": {"class_type": "CLIPMergeSimple", "inputs": {"clip1": ["1", 1], "clip2": ["2", 1], "ratio": 0.4}},
        "5": {"class_type": "CheckpointSave", "inputs": {"model": ["3", 0], "clip": ["4", 0], "vae": ["1", 2],
                                                          "filename_prefix": "checkpoints/merged"}},
    }
    r = merge_server.post("/api/prompt", {"prompt": graph})
    assert r.status == 200, r.body
    entry = merge_server.wait_for_job(r.json()["prompt_id"], timeout=120)
    assert entry["status"]["status_str"] == "success", entry["status"]
    [saved] = list((merge_server.base_dir / "output" / "checkpoints").glob("merged_*.safetensors"))
    assert saved.name == "merged_00001_.safetensors"
    sd = load_file(str(saved))
    wa, wb = _weights(tiny_models[0]), _weights(models_b[0])
    torch.testing.assert_close(sd["model." + IN_BLOCK], wa[IN_BLOCK] * 0.4 + wb[IN_BLOCK] * 0.6)
    ca, cb = _clip_weights(tiny_models[1]), _clip_weights(models_b[1])
    key = "encoder.layers.1.mlp.fc1.weight"
    torch.testing.assert_close(sd["cond_stage_model.transformer.text_model." + key],
                               ca["text_model." + key] * 0.4 + cb["text_model." + key] * 0.6)
