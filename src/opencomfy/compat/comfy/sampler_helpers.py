"""ComfyUI's ``comfy.sampler_helpers``: what custom samplers do around a sampling run.

Conditioning entries converted to dicts (:func:`convert_cond`), the extra models they carry
(ControlNets, a MODEL's additional models), the noise mask brought to the latent's shape, and
the prepare/cleanup pair. Our sampling path (:meth:`CFGGuider.sample`) loads and patches the
models it needs itself, so :func:`prepare_sampling` loads nothing: it hands back the MODEL
(our guiders' ``inner_model``), the conds and the extra models, for :func:`cleanup_models`.
"""

from __future__ import annotations

import math
import uuid
from typing import Any

import torch
import torch.nn.functional as F

__all__ = ["convert_cond", "get_models_from_cond", "get_additional_models", "cleanup_additional_models",
           "prepare_mask", "prepare_sampling", "cleanup_models", "estimate_memory"]


def convert_cond(cond) -> list[dict]:
    """CONDITIONING ``[[tensor, options], ...]`` -> ComfyUI's dict form: each entry's options
    with the tensor as ``cross_attn``, a ``model_conds`` dict and a fresh ``uuid``."""
    out = []
    for tensor, options in cond:
        entry = dict(options)
        if tensor is not None:
            entry["cross_attn"] = tensor
        entry["model_conds"] = entry.get("model_conds", {})
        entry["uuid"] = uuid.uuid4()
        out.append(entry)
    return out


def _options_of(entry) -> dict:
    """The options of a CONDITIONING pair or of a converted (dict) entry."""
    if isinstance(entry, dict):
        return entry
    return entry[1] if isinstance(entry, (list, tuple)) and len(entry) > 1 else {}


def _controlnets(value) -> list:
    # Our conditioning carries a tuple of applications (each names its ControlNet); a pack may
    # have put a ControlNet object there itself.
    items = value if isinstance(value, (list, tuple)) else [value]
    return [getattr(item, "control", item) for item in items]


def get_models_from_cond(cond, model_type: str) -> list:
    """The models under ``model_type`` ("control", "gligen", "additional_models") in ``cond``."""
    models: list = []
    for entry in cond or ():
        options = _options_of(entry)
        if model_type not in options:
            continue
        value = options[model_type]
        if model_type == "control":
            models += _controlnets(value)
        else:
            models += list(value) if isinstance(value, list) else [value]
    return models


def get_additional_models(conds, dtype=None, *legacy):
    """(the extra models of the conds, their inference memory in bytes).

    ``conds`` is ``{name: cond list}``; ComfyUI's older form ``(positive, negative, dtype)``
    is accepted too."""
    if isinstance(conds, dict):
        lists = list(conds.values())
    else:
        lists = [conds, dtype]
        dtype = legacy[0] if legacy else None
    controls: dict[int, object] = {}
    gligen, extra = [], []
    for cond in lists:
        for control in get_models_from_cond(cond, "control"):
            controls.setdefault(id(control), control)
        gligen += [g[1] if isinstance(g, tuple) and len(g) > 1 else g for g in get_models_from_cond(cond, "gligen")]
        extra += get_models_from_cond(cond, "additional_models")
    memory = 0
    for control in controls.values():
        required: Any = getattr(control, "inference_memory_requirements", None)
        memory += int(required(dtype)) if required is not None else 0
    return [*controls.values(), *gligen, *extra], memory


def cleanup_additional_models(models) -> None:
    """Call ``cleanup()`` on each model that has one."""
    for model in models:
        cleanup = getattr(model, "cleanup", None)
        if callable(cleanup):
            cleanup()


def prepare_mask(noise_mask: torch.Tensor, shape, device) -> torch.Tensor:
    """A ``[B?, H, W]`` mask resized (bilinear) to a latent ``shape`` ``[B, C, H, W]``: one
    channel per latent channel, repeated over the batch, on ``device``."""
    mask = noise_mask.reshape(-1, 1, noise_mask.shape[-2], noise_mask.shape[-1]).float()
    mask = F.interpolate(mask, size=tuple(shape[2:]), mode="bilinear")
    mask = torch.cat([mask] * shape[1], dim=1)
    if mask.shape[0] < shape[0]:
        mask = mask.repeat(math.ceil(shape[0] / mask.shape[0]), 1, 1, 1)
    return mask[:shape[0]].to(device)


def prepare_sampling(model, noise_shape, conds, model_options=None):
    """(MODEL, conds, extra models): nothing is loaded here, the sampling run loads what it
    uses; :func:`cleanup_models` releases the extra models afterwards."""
    models = get_additional_models(conds, getattr(model, "model_dtype", lambda: None)())[0]
    nested: Any = getattr(model, "get_nested_additional_models", None)
    if nested is not None:
        models += nested()
    return model, conds, models


def cleanup_models(conds, models) -> None:
    cleanup_additional_models(models)
    controls = get_additional_models(conds)[0] if isinstance(conds, dict) else []
    cleanup_additional_models([c for c in controls if c not in models])


def estimate_memory(model, noise_shape, conds=None) -> tuple[int, int]:
    """(memory a run on ``noise_shape`` wants, the least it needs), in bytes."""
    required = int(model.memory_required(noise_shape))
    return required, required
