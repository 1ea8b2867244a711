"""Latent batch nodes, RebatchLatents and the latent arithmetic of nodes_latent."""

from __future__ import annotations

import pytest
import torch

from opencomfy.engine import NodeRegistry
from opencomfy.nodes import register_core_nodes
from opencomfy.nodes.latent_arithmetic import (LatentAdd, LatentInterpolate, LatentMultiply,
                                               LatentSubtract)
from opencomfy.nodes.latent_batch import (LatentBatch, LatentBatchSeedBehavior, LatentConcat,
                                          LatentCut, LatentFromBatch, RepeatLatentBatch)
from opencomfy.nodes.latent_rebatch import RebatchLatents


def run(cls, **inputs):
    return getattr(cls(), cls.FUNCTION)(**inputs)


def numbered(batch, height=2, width=2, start=0.0):
    """Sample i is filled with start + i, so batches can be followed by value."""
    values = torch.arange(batch, dtype=torch.float32) + start
    return values.reshape(batch, 1, 1, 1).expand(batch, 4, height, width).clone()


def sample_values(samples):
    return samples[:, 0, 0, 0].tolist()


def test_latent_from_batch_slices_and_numbers_the_samples():
    (latent,) = run(LatentFromBatch, samples={"samples": numbered(5)}, batch_index=1, length=3)
    assert sample_values(latent["samples"]) == [1, 2, 3]
    assert latent["batch_index"] == [1, 2, 3]


def test_latent_from_batch_clamps_to_the_batch_and_keeps_existing_indices():
    source = {"samples": numbered(3), "batch_index": [10, 11, 12]}
    (latent,) = run(LatentFromBatch, samples=source, batch_index=7, length=5)
    assert sample_values(latent["samples"]) == [2]
    assert latent["batch_index"] == [12]


def test_latent_from_batch_cuts_per_sample_masks_and_shares_a_single_one():
    masks = torch.arange(2.0).reshape(2, 1, 1, 1).expand(2, 1, 16, 16)
    (latent,) = run(LatentFromBatch, samples={"samples": numbered(4), "noise_mask": masks},
                    batch_index=1, length=2)
    # Two masks for four samples are tiled to 0,1,0,1 before cutting samples 1..2.
    assert latent["noise_mask"][:, 0, 0, 0].tolist() == [1.0, 0.0]
    single = torch.full((1, 1, 16, 16), 0.5)
    (latent,) = run(LatentFromBatch, samples={"samples": numbered(4), "noise_mask": single},
                    batch_index=2, length=1)
    assert torch.equal(latent["noise_mask"], single)


def test_repeat_latent_batch_repeats_and_continues_indices():
    source = {"samples": numbered(2), "batch_index": [2, 3]}
    (latent,) = run(RepeatLatentBatch, samples=source, amount=3)
    assert sample_values(latent["samples"]) == [0, 1, 0, 1, 0, 1]
    assert latent["batch_index"] == [2, 3, 4, 5, 6, 7]
    (latent,) = run(RepeatLatentBatch, samples={"samples": numbered(2)}, amount=2)
    assert "batch_index" not in latent


def test_repeat_latent_batch_repeats_only_per_sample_masks():
    masks = torch.zeros(2, 1, 16, 16)
    (latent,) = run(RepeatLatentBatch, samples={"samples": numbered(2), "noise_mask": masks},
                    amount=3)
    assert latent["noise_mask"].shape == (6, 1, 16, 16)
    single = torch.zeros(1, 1, 16, 16)
    (latent,) = run(RepeatLatentBatch, samples={"samples": numbered(2), "noise_mask": single},
                    amount=3)
    assert latent["noise_mask"] is single


def rebatch(latents, size):
    (out,) = run(RebatchLatents, latents=latents, batch_size=[size])
    return out


def test_rebatch_latents_regroups_a_list_and_numbers_the_stream():
    out = rebatch([{"samples": numbered(3)}, {"samples": numbered(2, start=3)}], 2)
    assert [sample_values(b["samples"]) for b in out] == [[0, 1], [2, 3], [4]]
    assert [b["batch_index"] for b in out] == [[0, 1], [2, 3], [4]]
    assert all("noise_mask" not in b for b in out)  # all-ones masks are dropped


def test_rebatch_latents_exact_multiple_and_larger_batches():
    out = rebatch([{"samples": numbered(2)}, {"samples": numbered(2, start=2)}], 2)
    assert [sample_values(b["samples"]) for b in out] == [[0, 1], [2, 3]]
    out = rebatch([{"samples": numbered(1)}, {"samples": numbered(1, start=1)},
                   {"samples": numbered(1, start=2)}], 5)
    assert [sample_values(b["samples"]) for b in out] == [[0, 1, 2]]


def test_rebatch_latents_closes_a_batch_when_the_size_changes():
    out = rebatch([{"samples": numbered(1)}, {"samples": numbered(1, 4, 4, start=1)},
                   {"samples": numbered(1, 4, 4, start=2)}], 4)
    assert [tuple(b["samples"].shape) for b in out] == [(1, 4, 2, 2), (2, 4, 4, 4)]
    assert [b["batch_index"] for b in out] == [[0], [1, 2]]


def test_rebatch_latents_keeps_given_indices_and_real_masks():
    mask = torch.zeros(1, 1, 16, 16)
    out = rebatch([{"samples": numbered(2), "batch_index": [7, 9], "noise_mask": mask},
                   {"samples": numbered(1, start=2)}], 3)
    (batch,) = out
    assert batch["batch_index"] == [7, 9, 2]
    # One mask for two samples is tiled, the maskless entry gets ones: 0, 0, 1.
    assert batch["noise_mask"][:, 0, 0, 0].tolist() == [0.0, 0.0, 1.0]


def test_rebatch_latents_declares_lists():
    assert RebatchLatents.INPUT_IS_LIST is True
    assert RebatchLatents.OUTPUT_IS_LIST == (True,)
    assert RebatchLatents.INPUT_TYPES()["required"]["batch_size"] == (
        "INT", {"default": 1, "min": 1, "max": 4096})


def test_latent_add_subtract_multiply():
    first = {"samples": torch.full((2, 4, 2, 2), 3.0), "batch_index": [0, 1]}
    second = {"samples": torch.full((1, 4, 2, 2), 1.0)}  # batch 1 repeats to 2
    (added,) = run(LatentAdd, samples1=first, samples2=second)
    assert added["samples"].shape == (2, 4, 2, 2)
    assert torch.all(added["samples"] == 4.0)
    assert added["batch_index"] == [0, 1]
    (subtracted,) = run(LatentSubtract, samples1=first, samples2=second)
    assert torch.all(subtracted["samples"] == 2.0)
    (multiplied,) = run(LatentMultiply, samples=first, multiplier=-0.5)
    assert torch.all(multiplied["samples"] == -1.5)


def test_latent_add_resizes_the_second_latent():
    first = {"samples": torch.zeros(1, 4, 4, 4)}
    (added,) = run(LatentAdd, samples1=first, samples2={"samples": torch.ones(1, 4, 2, 2)})
    assert torch.allclose(added["samples"], torch.ones(1, 4, 4, 4))


def vectors(*pixels):
    """A [1, 2, 1, N] latent whose channel vectors are the given (a, b) pairs."""
    return {"samples": torch.tensor(pixels, dtype=torch.float32).T.reshape(1, 2, 1, -1)}


def test_latent_interpolate_mixes_direction_and_length():
    first, second = vectors((3.0, 0.0)), vectors((0.0, 1.0))
    (latent,) = run(LatentInterpolate, samples1=first, samples2=second, ratio=1.0)
    assert torch.allclose(latent["samples"], first["samples"])
    (latent,) = run(LatentInterpolate, samples1=first, samples2=second, ratio=0.0)
    assert torch.allclose(latent["samples"], second["samples"])
    (latent,) = run(LatentInterpolate, samples1=first, samples2=second, ratio=0.5)
    # direction (1,1)/sqrt(2), length (3 + 1) / 2 = 2
    half = 2.0 / 2 ** 0.5
    assert latent["samples"].flatten().tolist() == pytest.approx([half, half])


def test_latent_interpolate_handles_zero_vectors_and_batches():
    first = vectors((0.0, 0.0), (2.0, 0.0))
    second = vectors((0.0, 4.0), (0.0, 0.0))
    (latent,) = run(LatentInterpolate, samples1=first, samples2=second, ratio=0.25)
    # pixel 0: only the second has a direction -> (0, 1) * 0.75 * 4 = (0, 3)
    # pixel 1: only the first -> (1, 0) * 0.25 * 2 = (0.5, 0)
    assert latent["samples"][0, :, 0, 0].tolist() == pytest.approx([0.0, 3.0])
    assert latent["samples"][0, :, 0, 1].tolist() == pytest.approx([0.5, 0.0])
    batch = {"samples": torch.cat([first["samples"], second["samples"]])}
    (latent,) = run(LatentInterpolate, samples1=batch, samples2=batch, ratio=0.3)
    assert torch.allclose(latent["samples"], batch["samples"])


def test_latent_batch_appends_and_joins_indices():
    first = {"samples": numbered(2), "batch_index": [4, 5]}
    second = {"samples": numbered(3, 4, 4, start=2)}  # resized to 2x2 before joining
    (latent,) = run(LatentBatch, samples1=first, samples2=second)
    assert latent["samples"].shape == (5, 4, 2, 2)
    assert sample_values(latent["samples"]) == pytest.approx([0, 1, 2, 3, 4])
    assert latent["batch_index"] == [4, 5, 0, 1, 2]


@pytest.mark.parametrize("dim,shape,first_value", [
    ("x", (1, 4, 2, 4), 0.0), ("-x", (1, 4, 2, 4), 1.0),
    ("y", (1, 4, 4, 2), 0.0), ("-y", (1, 4, 4, 2), 1.0),
])
def test_latent_concat(dim, shape, first_value):
    (latent,) = run(LatentConcat, samples1={"samples": numbered(1)},
                    samples2={"samples": numbered(1, start=1)}, dim=dim)
    assert tuple(latent["samples"].shape) == shape
    assert latent["samples"][0, 0, 0, 0].item() == first_value


def test_latent_cut():
    source = {"samples": torch.arange(10.0).reshape(1, 1, 1, 10)}
    (latent,) = run(LatentCut, samples=source, dim="x", index=3, amount=4)
    assert latent["samples"].flatten().tolist() == [3, 4, 5, 6]
    (latent,) = run(LatentCut, samples=source, dim="x", index=-2, amount=5)
    assert latent["samples"].flatten().tolist() == [8, 9]
    (latent,) = run(LatentCut, samples=source, dim="x", index=50, amount=5)
    assert latent["samples"].flatten().tolist() == [9]


def test_latent_batch_seed_behavior():
    source = {"samples": numbered(3), "batch_index": [5, 6, 7]}
    (latent,) = run(LatentBatchSeedBehavior, samples=source, seed_behavior="fixed")
    assert latent["batch_index"] == [5, 5, 5]
    (latent,) = run(LatentBatchSeedBehavior, samples=source, seed_behavior="random")
    assert "batch_index" not in latent
    assert source["batch_index"] == [5, 6, 7]
    (latent,) = run(LatentBatchSeedBehavior, samples={"samples": numbered(2)},
                    seed_behavior="fixed")
    assert latent["batch_index"] == [0, 0]


def test_v3_declarations_match_comfyui_object_info():
    assert LatentAdd.INPUT_TYPES() == {"required": {"samples1": ("LATENT", {}),
                                                    "samples2": ("LATENT", {})}}
    assert LatentMultiply.INPUT_TYPES()["required"]["multiplier"] == (
        "FLOAT", {"default": 1.0, "min": -10.0, "max": 10.0, "step": 0.01})
    assert LatentBatchSeedBehavior.INPUT_TYPES()["required"]["seed_behavior"] == (
        "COMBO", {"default": "fixed", "multiselect": False, "options": ["random", "fixed"]})
    assert LatentBatch.CATEGORY == "latent/batch"


def test_v3_node_info_reads_as_comfyui_reports_it():
    registry = NodeRegistry()
    register_core_nodes(registry)
    info = registry.node_info("LatentAdd")
    assert info == {
        "input": {"required": {"samples1": ("LATENT", {}), "samples2": ("LATENT", {})}},
        "input_order": {"required": ["samples1", "samples2"]},
        "output": ["LATENT"], "output_is_list": [False], "output_name": ["LATENT"],
        "output_tooltips": [None], "name": "LatentAdd", "display_name": None,
        "description": "", "python_module": "comfy_extras.nodes_latent",
        "category": "latent/advanced", "output_node": False, "deprecated": False,
        "experimental": False, "api_node": False,
    }
    v1 = registry.node_info("LatentFromBatch")
    assert v1["display_name"] == "Latent From Batch"
    assert "deprecated" not in v1 and "output_tooltips" not in v1
