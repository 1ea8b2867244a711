"""ComfyUI's ``comfy.lora``: which LoRA key names which model weight, and LoRA files as patches.

Packs with LoRA loaders of their own do what ComfyUI's loader does::

    key_map = comfy.lora.model_lora_keys_unet(model.model, {})
    key_map = comfy.lora.model_lora_keys_clip(clip.cond_stage_model, key_map)
    patches = comfy.lora.load_lora(lora_state_dict, key_map)
    model.add_patches(patches, strength)

Model weights are named the ComfyUI way (``diffusion_model.<LDM path>.weight``, see
:mod:`opencomfy.diffusion.weight_patches`); a LoRA key may use the LDM or the diffusers
module path (kohya ``lora_unet_...``, PEFT ``unet....``). Patches are ``("lora", (up, down,
alpha, mid, dora_scale, reshape))`` and ``("diff", (tensor,))``, what ``add_patches`` takes.
"""

from __future__ import annotations

import logging

import torch

log = logging.getLogger(__name__)

LORA_CLIP_MAP = {"mlp.fc1": "mlp_fc1", "mlp.fc2": "mlp_fc2", "self_attn.k_proj": "self_attn_k_proj",
                 "self_attn.q_proj": "self_attn_q_proj", "self_attn.v_proj": "self_attn_v_proj",
                 "self_attn.out_proj": "self_attn_out_proj"}

_PAIRS = ((".lora_up.weight", ".lora_down.weight"), ("_lora.up.weight", "_lora.down.weight"),
          (".lora_B.weight", ".lora_A.weight"), (".lora.up.weight", ".lora.down.weight"),
          (".lora_linear_layer.up.weight", ".lora_linear_layer.down.weight"))


def _unet_of(model):
    """The diffusion module of a BaseModel (``model.model``) or of a MODEL (ModelPatcher)."""
    for candidate in (model, getattr(model, "model", None)):
        unet = getattr(candidate, "diffusion_model", None)
        if isinstance(unet, torch.nn.Module):
            return unet
    raise TypeError(f"model_lora_keys_unet: {type(model).__name__} has no diffusion_model")


def model_lora_keys_unet(model, key_map: dict | None = None) -> dict:
    """Add ``lora name -> model weight key`` for every UNet weight to ``key_map``."""
    key_map = {} if key_map is None else key_map
    unet = _unet_of(model)
    if getattr(unet, "config", None) is not None and hasattr(unet.config, "up_block_types"):
        from opencomfy.diffusion.weight_patches import key_map as comfy_names

        names = {comfy: diffusers for comfy, diffusers in comfy_names(unet).items()
                 if comfy.startswith("diffusion_model.")}
    else:  # a module already in ComfyUI's layout
        names = {"diffusion_model." + k: k for k in unet.state_dict()}
    for comfy, diffusers in names.items():
        if not comfy.endswith(".weight"):
            continue
        ldm_path = comfy[len("diffusion_model."):-len(".weight")]
        key_map["lora_unet_" + ldm_path.replace(".", "_")] = comfy
        key_map[comfy[:-len(".weight")]] = comfy  # generic: the key itself without ".weight"
        path = diffusers[:-len(".weight")]
        key_map.setdefault("lora_unet_" + path.replace(".", "_"), comfy)
        key_map.setdefault("unet." + path, comfy)
        key_map.setdefault("lora_transformer_" + path.replace(".", "_"), comfy)
    return key_map


def _clip_parts(model) -> list:
    for candidate in (model, getattr(model, "cond_stage_model", None)):
        parts = getattr(candidate, "parts", None)
        if parts:
            return list(parts)
    return []


def model_lora_keys_clip(model, key_map: dict | None = None) -> dict:
    """Add ``lora name -> text encoder weight key`` (``clip_<l|g>.transformer.<path>.weight``)."""
    key_map = {} if key_map is None else key_map
    parts = _clip_parts(model)
    if not parts and isinstance(model, torch.nn.Module):
        for name in model.state_dict():
            if name.endswith(".weight"):
                key_map["lora_te_" + name[:-len(".weight")].replace(".", "_")] = name
        return key_map
    for part in parts:
        peft = "text_encoder." if part.key == "l" else "text_encoder_2."
        for name in part.model.state_dict():
            if not name.endswith(".weight"):
                continue
            comfy = f"clip_{part.key}.transformer.{name}"
            path = name[:-len(".weight")]
            flat = path[len("text_model."):] if path.startswith("text_model.") else path
            for prefix in part.lora_prefixes:
                key_map[prefix + "text_model_" + flat.replace(".", "_")] = comfy
            key_map[peft + "text_model." + flat] = comfy
            key_map[comfy[:-len(".weight")]] = comfy
    return key_map


def load_lora(lora: dict, to_load: dict, log_missing: bool = True) -> dict:
    """The patches of a LoRA state dict for the weights ``to_load`` names (lora name -> key)."""
    patches: dict = {}
    used: set[str] = set()
    for name, target in to_load.items():
        alpha_key = name + ".alpha"
        alpha = float(lora[alpha_key]) if alpha_key in lora else None
        if alpha is not None:
            used.add(alpha_key)
        for up_suffix, down_suffix in _PAIRS:
            up_key, down_key = name + up_suffix, name + down_suffix
            if up_key in lora and down_key in lora:
                mid_key = name + ".lora_mid.weight"
                mid = lora.get(mid_key)
                dora_key = name + ".dora_scale"
                dora = lora.get(dora_key)
                patches[target] = ("lora", (lora[up_key], lora[down_key], alpha, mid, dora, None))
                used.update(k for k in (up_key, down_key, mid_key, dora_key) if k in lora)
                break
        diff_key = name + ".diff"
        if diff_key in lora:
            patches[target] = ("diff", (lora[diff_key],))
            used.add(diff_key)
        bias_key = name + ".diff_b"
        if bias_key in lora and target.endswith(".weight"):
            patches[target[:-len(".weight")] + ".bias"] = ("diff", (lora[bias_key],))
            used.add(bias_key)
    if log_missing:
        for key in lora:
            if key not in used:
                log.warning("lora key not loaded: %s", key)
    return patches

