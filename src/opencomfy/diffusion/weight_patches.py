"""Weight patches in ComfyUI's key names over our diffusers UNet (``ModelPatcher.add_patches``).

ComfyUI names a MODEL's weights by the original LDM layout (``diffusion_model.input_blocks.1.1.
proj_in.weight``); our UNet is a diffusers module. :func:`key_map` pairs the two names of every
weight once per UNet, so custom nodes (model merging, LoRA loaders of their own) can patch our
MODEL with the keys they know. A :class:`WeightPatch` is applied like a :class:`LoraPatch`: added
to the shared weights while the MODEL runs, the originals restored afterwards.
"""

from __future__ import annotations

import logging

import torch

from opencomfy.diffusion.ldm_keys import unet_key_to_ldm

log = logging.getLogger(__name__)

COMFY_PREFIX = "diffusion_model."


def key_map(unet) -> dict[str, str]:
    """ComfyUI key -> diffusers parameter name for every weight of ``unet`` (cached on it);
    diffusers' own names (with or without the prefix) are accepted too."""
    cached = getattr(unet, "_opencomfy_key_map", None)
    if cached is not None:
        return cached
    config = unet.config
    with_attention = {i for i, t in enumerate(config.up_block_types) if "CrossAttn" in t}
    mapping: dict[str, str] = {}
    for name in unet.state_dict():
        mapping[name] = name
        mapping[COMFY_PREFIX + name] = name
        try:
            ldm = unet_key_to_ldm(name, layers_per_block=config.layers_per_block,
                                  up_blocks_with_attention=with_attention)
        except KeyError:
            continue
        mapping[COMFY_PREFIX + ldm] = name
    unet._opencomfy_key_map = mapping
    return mapping


def comfy_state_dict(patcher) -> dict[str, torch.Tensor]:
    """The UNet's tensors under ComfyUI's names (the LDM name where one exists)."""
    unet = patcher.model.diffusion_model
    config = unet.config
    with_attention = {i for i, t in enumerate(config.up_block_types) if "CrossAttn" in t}
    out = {}
    for name, tensor in unet.state_dict().items():
        try:
            name = unet_key_to_ldm(name, layers_per_block=config.layers_per_block,
                                   up_blocks_with_attention=with_attention)
        except KeyError:
            pass
        out[COMFY_PREFIX + name] = tensor
    return out


def _delta(kind: str, data, weight: torch.Tensor) -> torch.Tensor:
    if kind == "diff":
        return data.to(torch.float32).reshape(weight.shape)
    up, down, alpha = data[0], data[1], data[2]
    extras = [x for x in data[3:] if x is not None]
    if extras:
        raise ValueError("LoRA patches with a mid weight, DoRA scale or reshape are not supported yet")
    rank = down.shape[0]
    scale = float(alpha) / rank if alpha is not None else 1.0
    product = up.flatten(1).float() @ down.flatten(1).float()
    return (product * scale).reshape(weight.shape)


def _parse(value) -> tuple[str, object]:
    """A ComfyUI patch value -> ("diff" | "lora" | "set", data)."""
    if torch.is_tensor(value):
        return "diff", value
    if isinstance(value, list):
        # get_key_patches() of another MODEL: [weight (or (weight, convert_fn)), its patches...]
        first = value[0]
        return "diff", first[0] if isinstance(first, tuple) else first
    if isinstance(value, tuple):
        if len(value) == 1:
            return "diff", value[0]
        if len(value) == 2 and isinstance(value[0], str):
            kind, data = value
            if kind == "diff":
                return "diff", data[0]
            if kind in ("lora", "set"):
                return kind, data if kind == "lora" else data[0]
            raise ValueError(f"weight patches of type {kind!r} are not supported yet "
                             "(diff, lora and set are)")
    raise ValueError(f"unrecognised weight patch value of type {type(value).__name__}")


class WeightPatch:
    """Patches of named UNet parameters: ``w <- w * strength_model + strength * delta`` (or set)."""

    def __init__(self, module: torch.nn.Module, entries: dict[str, tuple[str, object, float, float]],
                 keys: list):
        self.module = module
        self.entries = entries      # param name -> (kind, data, strength_patch, strength_model)
        self.keys = keys            # the keys as given, in order

    @classmethod
    def from_comfy(cls, patcher, patches: dict, strength_patch: float, strength_model: float) -> "WeightPatch":
        unet = patcher.model.diffusion_model
        names = key_map(unet)
        entries, keys = {}, []
        for key, value in patches.items():
            lookup = key[0] if isinstance(key, tuple) and len(key) == 1 else key
            name = names.get(lookup) if isinstance(lookup, str) else None
            if name is None:
                continue
            kind, data = _parse(value)
            entries[name] = (kind, data, float(strength_patch), float(strength_model))
            keys.append(key)
        return cls(unet, entries, keys)

    def apply(self, strength: float = 1.0):
        """Patch the weights in place; returns the function that restores them."""
        params = dict(self.module.named_parameters())
        buffers = dict(self.module.named_buffers())
        saved = {}
        with torch.no_grad():
            for name, (kind, data, strength_patch, strength_model) in self.entries.items():
                weight = params.get(name, buffers.get(name))
                if weight is None:
                    continue
                saved[name] = weight.detach().clone()
                if kind == "set":
                    assert torch.is_tensor(data)
                    weight.copy_(data.to(weight.device, weight.dtype).reshape(weight.shape))
                    continue
                value = weight.float() * strength_model if strength_model != 1.0 else weight.float()
                value = value + _delta(kind, data, weight).to(weight.device) * (strength_patch * strength)
                weight.copy_(value.to(weight.dtype))

        targets = {name: params[name] if name in params else buffers[name] for name in saved}

        def restore():
            with torch.no_grad():
                for name, original in saved.items():
                    targets[name].copy_(original)
        return restore

    def __len__(self) -> int:
        return len(self.entries)
