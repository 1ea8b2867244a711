"""The per-architecture block merges for SD 2.x and SDXL: every UNet weight is the blend its own
block's ratio gives, with the block worked out here from the key itself."""

from __future__ import annotations

import pytest
import torch

from opencomfy.diffusion.loading import load_checkpoint_file
from opencomfy.diffusion.memory import models_in_use
from opencomfy.nodes import model_merging as mm


def _weights(model) -> dict[str, torch.Tensor]:
    with models_in_use(model):
        return {k: v.detach().clone() for k, v in model.model_state_dict("diffusion_model.").items()}


def _block(key: str, *, dotted: bool) -> str:
    """The merge input a ``diffusion_model.*`` key belongs to (ComfyUI's node input names)."""
    parts = key.split(".")
    if parts[1] in ("input_blocks", "middle_block", "output_blocks"):
        return f"{parts[1]}.{parts[2]}" + ("." if dotted else "")
    return parts[1] + "."


def _ratios(prefixes: list[str]) -> dict[str, float]:
    """A distinct ratio per input, so that a key blended with its neighbour's ratio shows."""
    return {p: round((i + 1) / (len(prefixes) + 1), 4) for i, p in enumerate(prefixes)}


@pytest.fixture(scope="module")
def sd2_models(tmp_path_factory):
    from opencomfy.diffusion.random_checkpoint import write_sd2_checkpoint

    folder = tmp_path_factory.mktemp("sd2-merge")
    out = []
    for seed in (1, 2):
        path = folder / f"sd2_{seed}.safetensors"
        write_sd2_checkpoint(path, seed=seed)
        out.append(load_checkpoint_file(str(path))[0])
    return out


def test_sd2_block_merge_blends_each_block_with_its_ratio(sd2_models):
    a, b = sd2_models
    assert a.family == "sd2"
    node = mm.ModelMergeSD2()
    prefixes = [k for k in node.INPUT_TYPES()["required"] if k not in ("model1", "model2")]
    assert prefixes == mm.ModelMergeSD1.PREFIXES and "input_blocks.11." in prefixes
    ratios = _ratios(prefixes)
    wa, wb = _weights(a), _weights(b)
    merged = _weights(node.merge(a, b, **ratios)[0])
    assert set(merged) == set(wa)
    for key, value in merged.items():
        r = ratios[_block(key, dotted=True)]
        torch.testing.assert_close(value, wa[key] * r + wb[key] * (1 - r), msg=key)
    # model1 keeps its weights
    assert all(torch.equal(v, wa[k]) for k, v in _weights(a).items())


@pytest.fixture(scope="module")
def sdxl_model(tmp_path_factory):
    from opencomfy.diffusion.random_checkpoint import write_sdxl_checkpoint

    path = tmp_path_factory.mktemp("sdxl-merge") / "xl.safetensors"
    write_sdxl_checkpoint(path, seed=3)
    return load_checkpoint_file(str(path))[0]


def test_sdxl_block_merge_blends_each_block_with_its_ratio(sdxl_model):
    a = sdxl_model
    # model2 = model1 + model1: the blend r * A + (1 - r) * 2A = (2 - r) * A shows each ratio.
    (doubled,) = mm.ModelMergeAdd().merge(a, a)
    node = mm.ModelMergeSDXL()
    prefixes = [k for k in node.INPUT_TYPES()["required"] if k not in ("model1", "model2")]
    assert prefixes[:3] == ["time_embed.", "label_emb.", "input_blocks.0"]
    assert prefixes[-2:] == ["output_blocks.8", "out."] and len(prefixes) == 2 + 9 + 3 + 9 + 1
    ratios = _ratios(prefixes)
    wa = _weights(a)
    merged = _weights(node.merge(a, doubled, **ratios)[0])
    assert any(k.startswith("diffusion_model.label_emb.") for k in merged)
    for key, value in merged.items():
        r = ratios[_block(key, dotted=False)]
        torch.testing.assert_close(value, wa[key] * (2 - r), msg=key)
    # A ratio of 1 everywhere is model1 itself.
    same = _weights(node.merge(a, doubled, **dict.fromkeys(prefixes, 1.0))[0])
    assert all(torch.equal(v, wa[k]) for k, v in same.items())
