"""Merging two models (or two CLIPs) as weight patches, as ComfyUI's model-merging nodes do.

A merge never writes a new model: the result is a clone of the first model with one weight
patch per key, ``w1 <- w1 * strength_model + strength_patch * w2`` (``add_patches`` with a
model-to-model patch), applied while the merged MODEL runs. So a simple merge at ``ratio`` is
``w1 * ratio + w2 * (1 - ratio)``, an add is ``w1 + w2`` and a subtract at ``m`` is
``w1 * m - w2 * m`` (ComfyUI's own strengths, quirks included).

The second model's weights are read as that model sees them: when it carries weight patches
of its own (a LoRA, an earlier merge) or shares its weights with the first model, they are
materialised once on the CPU, so the merge does not depend on patch order at run time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch

from opencomfy.diffusion.weight_patches import COMFY_PREFIX, WeightPatch

log = logging.getLogger(__name__)

# CLIP keys that are positions or scales, never merged (ComfyUI skips them too).
_CLIP_SKIPPED = (".position_ids", ".logit_scale")


def _materialised(handle, state_dict: Callable[[], dict], force: bool) -> dict[str, torch.Tensor]:
    """``state_dict()`` with the handle's weight patches applied; copied to the CPU when patched
    (or when ``force``), else the live tensors."""
    patches: list[tuple[Any, float]] = list(getattr(handle, "patches", ()))
    if not patches and not force:
        return state_dict()
    restores = []
    try:
        with torch.no_grad():
            for patch, strength in patches:
                restores.append(patch.apply(strength))
            return {k: v.detach().to("cpu", copy=True) for k, v in state_dict().items()}
    finally:
        for restore in reversed(restores):
            restore()


def model_weights(model, *, copy: bool = False) -> dict[str, torch.Tensor]:
    """A MODEL's UNet weights under ComfyUI's names (``diffusion_model.<LDM path>``), with its
    own weight patches applied."""
    return _materialised(model, lambda: model.model_state_dict(COMFY_PREFIX), copy)


def _merge(model1, model2, strengths: Callable[[str], tuple[float, float]]):
    """A clone of ``model1`` patched with ``model2``'s weights at ``strengths(key)`` =
    (strength_patch, strength_model) per ComfyUI key."""
    if not hasattr(model2, "model_state_dict") or not hasattr(model1, "add_patches"):
        raise ValueError("model merging needs two MODEL values loaded by this server")
    families = (getattr(model1, "family", None), getattr(model2, "family", None))
    if None not in families and families[0] != families[1]:
        raise ValueError(f"cannot merge a {families[1]} model into a {families[0]} model: they are "
                         "different architectures")
    shared = model1.model is model2.model
    theirs = model_weights(model2, copy=shared)
    ours = model1.model_state_dict(COMFY_PREFIX)
    merged = model1.clone()
    by_strength: dict[tuple[float, float], dict] = {}
    skipped = []
    for key, weight in theirs.items():
        own = ours.get(key)
        if own is None or own.shape != weight.shape:
            skipped.append(key)
            continue
        strength_patch, strength_model = strengths(key)
        if strength_patch == 0.0 and strength_model == 1.0:
            continue    # leaves the weight as it is
        by_strength.setdefault((strength_patch, strength_model), {})[key] = weight
    if skipped:
        if len(skipped) == len(theirs):
            raise ValueError("the two models do not share a single weight of the same shape: they are "
                             "different architectures and cannot be merged")
        log.warning("model merge: %d weights of the second model have no counterpart (e.g. %s)",
                    len(skipped), skipped[0])
    for (strength_patch, strength_model), patches in by_strength.items():
        merged.add_patches(patches, strength_patch, strength_model)
    return merged


def merge_simple(model1, model2, ratio: float):
    """``model1 * ratio + model2 * (1 - ratio)`` (ModelMergeSimple)."""
    return _merge(model1, model2, lambda _key: (1.0 - ratio, ratio))


def merge_add(model1, model2):
    """``model1 + model2`` (ModelMergeAdd)."""
    return _merge(model1, model2, lambda _key: (1.0, 1.0))


def merge_subtract(model1, model2, multiplier: float):
    """``(model1 - model2) * multiplier`` (ModelMergeSubtract)."""
    return _merge(model1, model2, lambda _key: (-multiplier, multiplier))


def block_ratio(key: str, ratios: list[tuple[str, float]]) -> float:
    """The ratio of the longest prefix in ``ratios`` that the key's UNet path starts with; the
    first ratio when none does (ComfyUI's block merge rule)."""
    path = key[len(COMFY_PREFIX):] if key.startswith(COMFY_PREFIX) else key
    ratio, matched = ratios[0][1], 0
    for prefix, value in ratios:
        if path.startswith(prefix) and len(prefix) > matched:
            ratio, matched = value, len(prefix)
    return ratio


def merge_blocks(model1, model2, ratios: list[tuple[str, float]]):
    """A merge with one ratio per block prefix (``[(prefix, ratio), ...]`` in input order)."""
    if not ratios:
        raise ValueError("a block merge needs at least one ratio")

    def strengths(key):
        ratio = block_ratio(key, ratios)
        return 1.0 - ratio, ratio
    return _merge(model1, model2, strengths)


# --- CLIP ------------------------------------------------------------------------------------

def _clip_parts(clip) -> dict[str, Any]:
    parts = getattr(clip, "parts", None)
    if parts is None:
        raise ValueError("CLIP merging needs CLIP values loaded by this server")
    return {f"clip_{p.key}.transformer.": p.model for p in parts}


def comfy_clip_name(name: str) -> str:
    """A transformers text-model key as ComfyUI names it (``text_model.`` before the tower's
    layers; transformers 5 leaves that prefix out, the projection never had it)."""
    if name.startswith(("text_model.", "text_projection.")):
        return name
    return "text_model." + name


def clip_weights(clip, *, copy: bool = False) -> dict[str, torch.Tensor]:
    """A CLIP's weights under ComfyUI's names (``clip_l.transformer.text_model...``), with its
    own weight patches applied."""
    def state_dict():
        return {prefix + comfy_clip_name(k): v for prefix, m in _clip_parts(clip).items()
                for k, v in m.state_dict().items()}
    return _materialised(clip, state_dict, copy)


def _merge_clip(clip1, clip2, strength_patch: float, strength_model: float):
    shared = any(a is b for a, b in zip(_clip_parts(clip1).values(), _clip_parts(clip2).values(), strict=False))
    theirs = clip_weights(clip2, copy=shared)
    merged = clip1.clone()
    if strength_patch == 0.0 and strength_model == 1.0:
        return merged
    matched = 0
    for prefix, module in _clip_parts(clip1).items():
        own = module.state_dict()
        entries = {}
        for name, weight in own.items():
            other = theirs.get(prefix + comfy_clip_name(name))
            if other is None or other.shape != weight.shape or name.endswith(_CLIP_SKIPPED):
                continue
            entries[name] = ("diff", other, float(strength_patch), float(strength_model))
        if entries:
            matched += len(entries)
            keys = [prefix + comfy_clip_name(n) for n in entries]
            merged.patches.append((WeightPatch(module, entries, keys), 1.0))
    if not matched:
        raise ValueError("the two CLIPs share no text encoder weights of the same shape; they cannot be merged")
    return merged


def clip_merge_simple(clip1, clip2, ratio: float):
    return _merge_clip(clip1, clip2, 1.0 - ratio, ratio)


def clip_merge_add(clip1, clip2):
    return _merge_clip(clip1, clip2, 1.0, 1.0)


def clip_merge_subtract(clip1, clip2, multiplier: float):
    return _merge_clip(clip1, clip2, -multiplier, multiplier)
