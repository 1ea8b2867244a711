"""The rest of the hook nodes: combining hook groups, keyframes from a FLOATS list, a checkpoint
as a LoRA hook (for the UNet and the text encoder), CLIP hooks, and the property nodes that
combine conditioning. Expectations are computed by hand from the inputs: weights A + s * B,
keyframe percents spread evenly, the conditioning dicts' exact contents."""

from __future__ import annotations

import pytest
import torch

from opencomfy.compat import folder_paths
from opencomfy.diffusion.hooks import HookGroup, WeightHook, hooks_applied
from opencomfy.diffusion.memory import models_in_use
from opencomfy.nodes import diffusion_conditioning as cn
from opencomfy.nodes import hooks as hn
from opencomfy.nodes import hooks_conditioning as hc
from opencomfy.nodes import model_merging as mm

IN_BLOCK = "diffusion_model.input_blocks.1.1.proj_in.weight"
OUT_BLOCK = "diffusion_model.output_blocks.3.1.proj_in.weight"


@pytest.fixture(scope="module")
def checkpoint_b(tmp_path_factory):
    """A second tiny checkpoint (other weights) in a folder of its own, and its models."""
    from opencomfy.diffusion.loading import load_checkpoint_file
    from opencomfy.diffusion.random_checkpoint import write_sd1_checkpoint

    folder = tmp_path_factory.mktemp("hook-checkpoints")
    write_sd1_checkpoint(folder / "b.safetensors", "tiny", seed=11)
    return folder, load_checkpoint_file(str(folder / "b.safetensors"))


@pytest.fixture
def checkpoints(checkpoint_b, monkeypatch):
    monkeypatch.setitem(folder_paths.folder_names_and_paths, "checkpoints",
                        ([str(checkpoint_b[0])], folder_paths.supported_pt_extensions))
    folder_paths.filename_list_cache.pop("checkpoints", None)
    yield checkpoint_b[1]
    folder_paths.filename_list_cache.pop("checkpoints", None)


def _unet(model, hooks=None, sigma: float = 1.0) -> dict[str, torch.Tensor]:
    """The UNet weights (by ComfyUI key) while ``hooks`` are applied."""
    with models_in_use(model), hooks_applied(model, hooks, sigma, None):
        return {k: v.detach().clone() for k, v in model.model_state_dict("diffusion_model.").items()}


def _hook(**kwargs) -> HookGroup:
    return HookGroup([WeightHook(model_weights={}, **kwargs)])


# --- CombineHooks -------------------------------------------------------------------------------

@pytest.mark.parametrize("count", [2, 4, 8])
def test_combine_hooks_keeps_every_hook_once_in_input_order(count):
    node = {name: cls for name, cls, *_ in hn.NODES}[f"CombineHooks{count}"]()
    letters = "ABCDEFGH"[:count]
    assert list(node.INPUT_TYPES()["optional"]) == [f"hooks_{x}" for x in letters]
    groups = [_hook(strength_model=float(i)) for i in range(count)]
    shared = groups[0].hooks[0]
    groups[-1] = HookGroup([shared, *groups[-1].hooks])       # a hook given twice counts once
    (out,) = node.combine_hooks(**{f"hooks_{x}": g for x, g in zip(letters, groups, strict=True)})
    assert [h.strength_model for h in out.hooks] == [float(i) for i in range(count)]
    assert all(h is not g.hooks[-1] for h, g in zip(out.hooks, groups, strict=True))  # clones ...
    assert out.hooks[0] == shared                                                    # ... of the same hooks
    # Missing inputs are skipped; one group alone comes back as is; none gives no hooks.
    (one,) = node.combine_hooks(hooks_B=groups[1])
    assert one is groups[1]
    assert node.combine_hooks() == (None,)


# --- keyframes ------------------------------------------------------------------------------------

def test_keyframes_from_floats_spread_evenly_between_the_percents():
    node = hn.CreateHookKeyframesFromFloats()
    (kf,) = node.create_hook_keyframes([0.2, 0.5, 1.0, 0.0], 0.1, 0.7)
    frames = kf.keyframes
    assert [f.strength for f in frames] == [0.2, 0.5, 1.0, 0.0]
    assert [round(f.start_percent, 6) for f in frames] == [0.1, 0.3, 0.5, 0.7]
    assert [f.guarantee_steps for f in frames] == [1, 0, 0, 0]       # only the first is held a step
    (single,) = node.create_hook_keyframes(0.75, 0.4, 0.9)
    # (percents go through float32, as ComfyUI's torch.linspace does)
    assert [(f.strength, f.start_percent) for f in single.keyframes] == [(0.75, pytest.approx(0.4))]
    (chained,) = node.create_hook_keyframes([3.0], 0.05, 1.0, prev_hook_kf=single)
    assert [f.strength for f in chained.keyframes] == [3.0, 0.75]     # sorted by start percent
    assert len(single.keyframes) == 1                                 # the previous group is unchanged
    with pytest.raises(ValueError, match="floats_strength is empty"):
        node.create_hook_keyframes([], 0.0, 1.0)
    with pytest.raises(ValueError, match="floats_strength must be"):
        node.create_hook_keyframes(["a"], 0.0, 1.0)


# --- a checkpoint as a LoRA hook -------------------------------------------------------------------

def test_model_as_lora_hook_adds_the_checkpoint_weights_at_its_strength(tiny_models, checkpoints):
    model, _, _ = tiny_models
    model_b = checkpoints[0]
    wa, wb = _unet(model), _unet(model_b)
    (hooks,) = hn.CreateHookModelAsLora().create_hook("b.safetensors", 0.5, 1.0)
    [hook] = hooks.hooks
    assert (hook.strength_model, hook.strength_clip) == (0.5, 1.0)
    hooked = _unet(model, hooks)
    for key in (IN_BLOCK, OUT_BLOCK):
        torch.testing.assert_close(hooked[key], wa[key] + 0.5 * wb[key])
    assert torch.equal(_unet(model)[IN_BLOCK], wa[IN_BLOCK])          # restored after the block

    (only,) = hn.CreateHookModelAsLoraModelOnly().create_hook_model_only("b.safetensors", -1.0, hooks)
    assert [h.strength_clip for h in only.hooks] == [1.0, 0.0]       # appended to the previous hooks
    torch.testing.assert_close(_unet(model, only)[IN_BLOCK], wa[IN_BLOCK] - 0.5 * wb[IN_BLOCK])


def test_set_clip_hooks_encodes_with_the_hook_weights(tiny_models, checkpoints):
    _, clip, _ = tiny_models
    clip_b = checkpoints[1]
    (hooks,) = hn.CreateHookModelAsLora().create_hook("b.safetensors", 1.0, 1.0)
    (hooked,) = hn.SetClipHooks().apply_hooks(clip, True, False, hooks)
    (plain_cond,) = cn.CLIPTextEncode().encode(clip, "a red fox")
    (cond,) = cn.CLIPTextEncode().encode(hooked, "a red fox")
    # The hook at strength_clip 1 adds B's text-encoder weights: the CLIP of A + B encodes alike.
    (added,) = mm.CLIPMergeAdd().merge(clip, clip_b)
    (expected,) = cn.CLIPTextEncode().encode(added, "a red fox")
    torch.testing.assert_close(cond[0][0], expected[0][0], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(cond[0][1]["pooled_output"], expected[0][1]["pooled_output"], atol=1e-4, rtol=1e-4)
    assert not torch.allclose(cond[0][0], plain_cond[0][0], atol=1e-3)
    assert cond[0][1]["hooks"] is hooks and "hooks" not in plain_cond[0][1]    # apply_to_conds

    (quiet,) = hn.SetClipHooks().apply_hooks(clip, False, False, hooks)
    (cond_quiet,) = cn.CLIPTextEncode().encode(quiet, "a red fox")
    assert "hooks" not in cond_quiet[0][1]
    torch.testing.assert_close(cond_quiet[0][0], expected[0][0], atol=1e-4, rtol=1e-4)
    # A model-only hook leaves the encoding alone; no hooks return the CLIP itself.
    (model_only,) = hn.CreateHookModelAsLoraModelOnly().create_hook_model_only("b.safetensors", 1.0)
    (same,) = hn.SetClipHooks().apply_hooks(clip, False, False, model_only)
    torch.testing.assert_close(cn.CLIPTextEncode().encode(same, "a red fox")[0][0][0], plain_cond[0][0])
    assert hn.SetClipHooks().apply_hooks(clip, True, False, None)[0] is clip


def test_set_clip_hooks_refuses_a_clip_it_cannot_patch():
    with pytest.raises(ValueError, match="cannot take hooks"):
        hn.SetClipHooks().apply_hooks(object(), True, False, _hook())


# --- conditioning property nodes ------------------------------------------------------------------

def _cond(value: float, **options):
    return [[torch.full((1, 2, 4), value), dict(options)]]


def test_set_properties_and_combine_appends_the_new_entry_with_its_properties():
    hooks = _hook()
    mask = torch.ones(8, 8)
    old, new = _cond(1.0, a=1), _cond(2.0, b=2)
    (out,) = hc.ConditioningSetPropertiesAndCombine().run(old, new, 0.6, "mask bounds", mask=mask, hooks=hooks,
                                                          timesteps=(0.25, 0.75))
    assert len(out) == 2 and out[0] is old[0]
    tensor, options = out[1]
    assert tensor is new[0][0]
    assert options["mask"].shape == (1, 8, 8) and options["set_area_to_bounds"] is True
    assert options["mask_strength"] == 0.6
    assert (options["start_percent"], options["end_percent"]) == (0.25, 0.75)
    assert options["hooks"] is hooks and options["b"] == 2
    assert new[0][1] == {"b": 2}                                     # the input is not modified
    # Without a mask the strength changes nothing (as in ComfyUI); "default" keeps the mask's area.
    (plain,) = hc.ConditioningSetPropertiesAndCombine().run(old, new, 0.6, "default")
    assert plain[1][1] == {"b": 2}
    (default_area,) = hc.ConditioningSetPropertiesAndCombine().run(old, new, 1.0, "default", mask=mask)
    assert default_area[1][1]["set_area_to_bounds"] is False


def test_pair_set_properties_sets_both_sides():
    hooks = _hook()
    pos, neg = _cond(1.0, p=1), _cond(-1.0, n=1)
    mask = torch.zeros(1, 4, 4)
    out_pos, out_neg = hc.PairConditioningSetProperties().run(pos, neg, 2.0, "default", mask=mask, hooks=hooks,
                                                              timesteps=(0.0, 0.5))
    for out, extra in ((out_pos, {"p": 1}), (out_neg, {"n": 1})):
        assert len(out) == 1
        options = out[0][1]
        assert {k: options[k] for k in extra} == extra
        assert options["mask"] is mask and options["mask_strength"] == 2.0
        assert options["set_area_to_bounds"] is False and options["hooks"] is hooks
        assert (options["start_percent"], options["end_percent"]) == (0.0, 0.5)
    # Hooks already on an entry are kept beside the new ones.
    earlier = _hook()
    (again, _) = hc.PairConditioningSetProperties().run(out_pos, neg, 1.0, "default", hooks=earlier)
    assert again[0][1]["hooks"].hooks == [*hooks.hooks, *earlier.hooks]


def test_pair_default_combine_marks_the_appended_pair_default():
    hooks = _hook()
    pos, neg = _cond(1.0), _cond(-1.0)
    d_pos, d_neg = _cond(5.0, x=1), _cond(-5.0)
    out_pos, out_neg = hc.PairConditioningSetDefaultCombine().run(pos, neg, d_pos, d_neg, hooks=hooks)
    assert [len(out_pos), len(out_neg)] == [2, 2]
    assert out_pos[0] is pos[0] and out_neg[0] is neg[0]
    assert out_pos[1][1] == {"x": 1, "default": True, "hooks": hooks}
    assert out_neg[1][1] == {"default": True, "hooks": hooks}
    assert torch.equal(out_pos[1][0], d_pos[0][0]) and d_pos[0][1] == {"x": 1}
    (no_hooks, _) = hc.PairConditioningSetDefaultCombine().run(pos, neg, d_pos, d_neg)
    assert no_hooks[1][1] == {"x": 1, "default": True}
