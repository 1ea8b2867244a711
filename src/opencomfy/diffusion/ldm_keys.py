"""Names of weights in the original LDM single-file layout versus diffusers' module names.

Real checkpoints (``v1-5-pruned-emaonly.safetensors`` and friends) store the UNet under
``model.diffusion_model.``, the VAE under ``first_stage_model.`` and the SD1 text encoder under
``cond_stage_model.transformer.``. Loading goes LDM -> diffusers through diffusers' own
converters; this module provides the other direction (diffusers -> LDM), which the test
fixtures use to write checkpoints in the real layout and LoRA loading uses to find the module a
``lora_unet_input_blocks_1_1_...`` key names.
"""

from __future__ import annotations

import re

import torch

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
SD1_CLIP_PREFIX = "cond_stage_model.transformer.text_model."
SD2_CLIP_PREFIX = "cond_stage_model.model."
SDXL_CLIP_L_PREFIX = "conditioner.embedders.0.transformer.text_model."
SDXL_CLIP_G_PREFIX = "conditioner.embedders.1.model."

_RESNET = (("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("time_emb_proj", "emb_layers.1"),
           ("norm2", "out_layers.0"), ("conv2", "out_layers.3"), ("conv_shortcut", "skip_connection"))
_VAE_ATTENTION = (("group_norm", "norm"), ("to_q", "q"), ("to_k", "k"), ("to_v", "v"),
                  ("to_out.0", "proj_out"))


def _rename(rest: str, table) -> str:
    for new, old in table:
        if rest == new or rest.startswith(new + "."):
            return old + rest[len(new):]
    return rest


def unet_key_to_ldm(key: str, *, layers_per_block: int, up_blocks_with_attention: set[int]) -> str:
    """One diffusers ``UNet2DConditionModel`` key -> its LDM key (without the prefix)."""
    per_level = layers_per_block + 1
    simple = (("conv_in.", "input_blocks.0.0."), ("time_embedding.linear_1.", "time_embed.0."),
              ("time_embedding.linear_2.", "time_embed.2."), ("add_embedding.linear_1.", "label_emb.0.0."),
              ("add_embedding.linear_2.", "label_emb.0.2."), ("conv_norm_out.", "out.0."),
              ("conv_out.", "out.2."))
    for new, old in simple:
        if key.startswith(new):
            return old + key[len(new):]
    m = re.match(r"down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.*)", key)
    if m:
        level, kind, j, rest = int(m[1]), m[2], int(m[3]), m[4]
        index = level * per_level + j + 1
        if kind == "resnets":
            return f"input_blocks.{index}.0.{_rename(rest, _RESNET)}"
        return f"input_blocks.{index}.1.{rest}"
    m = re.match(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.*)", key)
    if m:
        return f"input_blocks.{(int(m[1]) + 1) * per_level}.0.op.{m[2]}"
    m = re.match(r"mid_block\.resnets\.(\d+)\.(.*)", key)
    if m:
        return f"middle_block.{2 * int(m[1])}.{_rename(m[2], _RESNET)}"
    if key.startswith("mid_block.attentions.0."):
        return "middle_block.1." + key[len("mid_block.attentions.0."):]
    m = re.match(r"up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.*)", key)
    if m:
        level, kind, j, rest = int(m[1]), m[2], int(m[3]), m[4]
        index = level * per_level + j
        if kind == "resnets":
            return f"output_blocks.{index}.0.{_rename(rest, _RESNET)}"
        return f"output_blocks.{index}.1.{rest}"
    m = re.match(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.*)", key)
    if m:
        level = int(m[1])
        slot = 2 if level in up_blocks_with_attention else 1
        return f"output_blocks.{level * per_level + layers_per_block}.{slot}.conv.{m[2]}"
    raise KeyError(f"no LDM name for UNet key {key!r}")


def unet_to_ldm(state_dict: dict, config: dict) -> dict:
    """A diffusers UNet state dict -> LDM keys (with ``model.diffusion_model.``)."""
    with_attention = {i for i, t in enumerate(config["up_block_types"]) if "CrossAttn" in t}
    return {UNET_PREFIX + unet_key_to_ldm(k, layers_per_block=config["layers_per_block"],
                                          up_blocks_with_attention=with_attention): v
            for k, v in state_dict.items()}


def vae_key_to_ldm(key: str, *, levels: int) -> str:
    """One diffusers ``AutoencoderKL`` key -> its LDM key (without the prefix)."""
    key = key.replace("conv_norm_out.", "norm_out.")
    m = re.match(r"(encoder|decoder)\.mid_block\.resnets\.(\d+)\.(.*)", key)
    if m:
        return f"{m[1]}.mid.block_{int(m[2]) + 1}.{_rename(m[3], (('conv_shortcut', 'nin_shortcut'),))}"
    m = re.match(r"(encoder|decoder)\.mid_block\.attentions\.0\.(.*)", key)
    if m:
        return f"{m[1]}.mid.attn_1.{_rename(m[2], _VAE_ATTENTION)}"
    m = re.match(r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", key)
    if m:
        return f"encoder.down.{m[1]}.block.{m[2]}.{_rename(m[3], (('conv_shortcut', 'nin_shortcut'),))}"
    m = re.match(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.*)", key)
    if m:
        return f"encoder.down.{m[1]}.downsample.conv.{m[2]}"
    m = re.match(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", key)
    if m:
        level = levels - 1 - int(m[1])
        return f"decoder.up.{level}.block.{m[2]}.{_rename(m[3], (('conv_shortcut', 'nin_shortcut'),))}"
    m = re.match(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.*)", key)
    if m:
        return f"decoder.up.{levels - 1 - int(m[1])}.upsample.conv.{m[2]}"
    return key


def vae_to_ldm(state_dict: dict, config: dict) -> dict:
    """A diffusers VAE state dict -> LDM keys; attention projections become 1x1 convolutions."""
    levels = len(config["block_out_channels"])
    out = {}
    for key, value in state_dict.items():
        ldm = vae_key_to_ldm(key, levels=levels)
        if ".mid.attn_1." in ldm and ldm.endswith(".weight") and value.ndim == 2:
            value = value[:, :, None, None]
        out[VAE_PREFIX + ldm] = value
    return out


def sd1_clip_to_ldm(state_dict: dict, prefix: str = SD1_CLIP_PREFIX) -> dict:
    """A transformers ``CLIPTextModel`` state dict -> SD1 (or SDXL CLIP-L) checkpoint keys."""
    out = {}
    for key, value in state_dict.items():
        key = key[len("text_model."):] if key.startswith("text_model.") else key
        if key == "embeddings.position_ids":
            continue
        out[prefix + key] = value
    return out


def open_clip_to_ldm(state_dict: dict, prefix: str = SDXL_CLIP_G_PREFIX) -> dict:
    """A transformers ``CLIPTextModelWithProjection`` state dict -> open_clip's layout
    (fused q/k/v ``in_proj``, ``resblocks``, ``text_projection`` as a matrix to multiply by)."""
    sd = {(k[len("text_model."):] if k.startswith("text_model.") else k): v for k, v in state_dict.items()}
    out = {
        prefix + "token_embedding.weight": sd["embeddings.token_embedding.weight"],
        prefix + "positional_embedding": sd["embeddings.position_embedding.weight"],
        prefix + "ln_final.weight": sd["final_layer_norm.weight"],
        prefix + "ln_final.bias": sd["final_layer_norm.bias"],
        prefix + "text_projection": sd["text_projection.weight"].T.contiguous(),
    }
    layers = {int(k.split(".")[2]) for k in sd if k.startswith("encoder.layers.")}
    renames = (("layer_norm1", "ln_1"), ("layer_norm2", "ln_2"), ("mlp.fc1", "mlp.c_fc"),
               ("mlp.fc2", "mlp.c_proj"), ("self_attn.out_proj", "attn.out_proj"))
    for i in layers:
        src, dst = f"encoder.layers.{i}.", f"{prefix}transformer.resblocks.{i}."
        for kind in ("weight", "bias"):
            out[dst + f"attn.in_proj_{kind}"] = torch.cat(
                [sd[src + f"self_attn.{p}_proj.{kind}"] for p in ("q", "k", "v")])
            for new, old in renames:
                out[dst + f"{old}.{kind}"] = sd[src + f"{new}.{kind}"]
    return out
