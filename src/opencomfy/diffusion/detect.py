"""Which model a single-file checkpoint holds, and its diffusers configs, from the weights alone.

The configs of the known families ship as JSON beside this module (``configs/``); the sizes
that vary (channels, levels, layers, vocabulary) are read off the tensors' shapes, so a tiny
test model and a real SD 1.5 file go through the same code. Nothing is fetched.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

from opencomfy.diffusion.ldm_keys import (SD1_CLIP_PREFIX, SD2_CLIP_PREFIX, SDXL_CLIP_G_PREFIX,
                                         SDXL_CLIP_L_PREFIX, UNET_PREFIX, VAE_PREFIX)


from opencomfy.weights import UnsupportedCheckpoint  # raised by the loaders; re-exported here


@lru_cache(maxsize=None)
def bundled_config(name: str) -> dict:
    """A JSON config shipped in ``opencomfy/diffusion/configs`` (e.g. ``"sd1_unet"``)."""
    text = resources.files("opencomfy.diffusion").joinpath("configs", f"{name}.json").read_text()
    return json.loads(text)


@dataclass
class CheckpointLayout:
    """What a checkpoint holds: family and the diffusers config of each part found."""

    family: str                       # "sd1", "sd2" or "sdxl"
    unet: dict | None = None
    vae: dict | None = None
    text_encoder: dict | None = None    # CLIP-L (SD 1.x and SDXL), OpenCLIP-H (SD 2.x)
    text_encoder_2: dict | None = None  # OpenCLIP bigG (SDXL)
    scheduler: dict = field(default_factory=dict)


def _indices(shapes: dict, pattern: str) -> set[int]:
    rx = re.compile(pattern)
    return {int(m[1]) for k in shapes if (m := rx.match(k))}


def detect_family(shapes: dict[str, tuple]) -> str:
    """``"sd1"``, ``"sd2"`` or ``"sdxl"``; raise for layouts we do not load."""
    has_unet = any(k.startswith(UNET_PREFIX) for k in shapes)
    if any(k.startswith("conditioner.embedders.0.model.") for k in shapes):
        raise UnsupportedCheckpoint("SDXL refiner checkpoints are not supported yet")
    if any(k.startswith("conditioner.embedders.") for k in shapes) or UNET_PREFIX + "label_emb.0.0.weight" in shapes:
        if UNET_PREFIX + "label_emb.0.0.weight" in shapes or not has_unet:
            return "sdxl"
        raise UnsupportedCheckpoint("this SDXL-style checkpoint (refiner?) is not supported yet")
    if any(k.startswith(SD2_CLIP_PREFIX) for k in shapes):
        return "sd2"
    if has_unet and any(k.startswith(SD1_CLIP_PREFIX) for k in shapes):
        return "sd1"
    if has_unet:
        # A UNet without text encoder: SD 2.x UNets project linearly into 1024-wide attention.
        proj = shapes.get(UNET_PREFIX + "middle_block.1.proj_in.weight", ())
        return "sd2" if len(proj) == 2 else "sd1"
    raise UnsupportedCheckpoint("no diffusion model found in the checkpoint")


def unet_config(shapes: dict[str, tuple], family: str, prefix: str = UNET_PREFIX,
                pooled_dim: int = 1280) -> dict:
    """The diffusers UNet config for an LDM UNet whose tensors have these shapes."""
    config = copy.deepcopy(bundled_config(f"{family}_unet"))
    p = prefix
    conv_in = shapes[p + "input_blocks.0.0.weight"]
    config["in_channels"] = conv_in[1]
    config["out_channels"] = shapes[p + "out.2.weight"][0]
    inputs = _indices(shapes, re.escape(p) + r"input_blocks\.(\d+)\.")
    downsamples = _indices(shapes, re.escape(p) + r"input_blocks\.(\d+)\.0\.op\.weight")
    levels = len(downsamples) + 1
    layers = (len(inputs) - 1 - len(downsamples)) // levels
    if layers < 1 or 1 + levels * layers + len(downsamples) != len(inputs):
        raise UnsupportedCheckpoint("unrecognised UNet block layout")
    config["layers_per_block"] = layers
    channels, down_types, up_types = [], [], []
    for level in range(levels):
        first = level * (layers + 1) + 1
        channels.append(shapes[p + f"input_blocks.{first}.0.out_layers.3.weight"][0])
        has_attention = p + f"input_blocks.{first}.1.proj_in.weight" in shapes
        down_types.append("CrossAttnDownBlock2D" if has_attention else "DownBlock2D")
    for level in range(levels):
        first = level * (layers + 1)
        has_attention = p + f"output_blocks.{first}.1.proj_in.weight" in shapes
        up_types.append("CrossAttnUpBlock2D" if has_attention else "UpBlock2D")
    config["block_out_channels"] = channels
    config["down_block_types"] = down_types
    config["up_block_types"] = up_types
    attn2 = [k for k in shapes if k.startswith(p) and k.endswith("attn2.to_k.weight")]
    if not attn2:
        raise UnsupportedCheckpoint("UNet without cross-attention")
    config["cross_attention_dim"] = shapes[attn2[0]][1]
    config["use_linear_projection"] = len(shapes[p + "middle_block.1.proj_in.weight"]) == 2
    if family == "sd2":
        config["attention_head_dim"] = [max(1, c // 64) for c in channels]
    if family == "sdxl":
        # Transformer depth and heads (64 channels each) per level, as SDXL's config lists them.
        depths = []
        for level in range(levels):
            blocks = _indices(shapes, re.escape(p) + rf"input_blocks\.{level * (layers + 1) + 1}\.1\."
                                                     r"transformer_blocks\.(\d+)\.")
            depths.append(max(blocks) + 1 if blocks else 1)
        config["transformer_layers_per_block"] = depths
        config["attention_head_dim"] = [max(1, c // 64) for c in channels]
        adm_in = shapes[p + "label_emb.0.0.weight"][1]
        config["projection_class_embeddings_input_dim"] = adm_in
        config["addition_time_embed_dim"] = (adm_in - pooled_dim) // 6
    else:
        depths = _indices(shapes, re.escape(p) + r"middle_block\.1\.transformer_blocks\.(\d+)\.")
        config["transformer_layers_per_block"] = max(depths) + 1 if depths else 1
    return config


def vae_config(shapes: dict[str, tuple], family: str, prefix: str = VAE_PREFIX) -> dict:
    """The diffusers AutoencoderKL config for an LDM VAE with these shapes."""
    config = copy.deepcopy(bundled_config(f"{family}_vae"))
    p = prefix
    levels = len(_indices(shapes, re.escape(p) + r"encoder\.down\.(\d+)\."))
    blocks = _indices(shapes, re.escape(p) + r"encoder\.down\.0\.block\.(\d+)\.")
    config["in_channels"] = shapes[p + "encoder.conv_in.weight"][1]
    config["out_channels"] = shapes[p + "decoder.conv_out.weight"][0]
    config["latent_channels"] = shapes[p + "decoder.conv_in.weight"][1]
    config["layers_per_block"] = len(blocks)
    config["block_out_channels"] = [shapes[p + f"encoder.down.{i}.block.0.conv2.weight"][0]
                                    for i in range(levels)]
    config["down_block_types"] = ["DownEncoderBlock2D"] * levels
    config["up_block_types"] = ["UpDecoderBlock2D"] * levels
    return config


def sd1_text_encoder_config(shapes: dict[str, tuple], prefix: str = SD1_CLIP_PREFIX,
                            base: str = "sd1_text_encoder") -> dict:
    """The transformers CLIPTextConfig (as a dict) for a CLIP-L style text encoder."""
    config = copy.deepcopy(bundled_config(base))
    vocab, hidden = shapes[prefix + "embeddings.token_embedding.weight"]
    config["vocab_size"] = vocab
    config["hidden_size"] = hidden
    config["projection_dim"] = hidden
    config["max_position_embeddings"] = shapes[prefix + "embeddings.position_embedding.weight"][0]
    config["num_hidden_layers"] = len(_indices(shapes, re.escape(prefix) + r"encoder\.layers\.(\d+)\."))
    config["intermediate_size"] = shapes[prefix + "encoder.layers.0.mlp.fc1.weight"][0]
    # Heads cannot be read off the weights; CLIP uses 64 channels per head.
    config["num_attention_heads"] = max(1, hidden // 64)
    return config


def open_clip_config(shapes: dict[str, tuple], prefix: str = SDXL_CLIP_G_PREFIX,
                     base: str = "sdxl_text_encoder_2") -> dict:
    """The CLIPTextConfig (with projection) for an OpenCLIP text tower in open_clip's layout."""
    config = copy.deepcopy(bundled_config(base))
    vocab, hidden = shapes[prefix + "token_embedding.weight"]
    config["vocab_size"] = vocab
    config["hidden_size"] = hidden
    config["max_position_embeddings"] = shapes[prefix + "positional_embedding"][0]
    config["num_hidden_layers"] = len(_indices(shapes, re.escape(prefix) + r"transformer\.resblocks\.(\d+)\."))
    config["intermediate_size"] = shapes[prefix + "transformer.resblocks.0.mlp.c_fc.weight"][0]
    config["num_attention_heads"] = max(1, hidden // 64)
    config["projection_dim"] = shapes[prefix + "text_projection"][1]
    return config


def prediction_type(shapes: dict[str, tuple], family: str, unet: dict, norms: dict | None = None) -> str:
    """``"v_prediction"`` when the file says so (a ``v_pred`` key); else epsilon, except SD 2.x
    768 models, which are told apart from 512 ones by :func:`looks_v_prediction`."""
    if "v_pred" in shapes:
        return "v_prediction"
    if family == "sd2" and unet.get("in_channels") == 4 and norms is not None:
        return "v_prediction" if looks_v_prediction(norms) else "epsilon"
    return "epsilon"


SD2_V_PROBE = UNET_PREFIX + "output_blocks.11.1.transformer_blocks.0.norm1.bias"


def looks_v_prediction(tensors: dict) -> bool:
    """SD 2.x 768-v models have visibly spread-out norm biases in the last output attention
    block; the 512 epsilon models do not (the heuristic ComfyUI users know)."""
    bias = tensors.get(SD2_V_PROBE)
    return bias is not None and float(bias.float().std(unbiased=False)) > 0.09


def detect_layout(shapes: dict[str, tuple]) -> CheckpointLayout:
    """Family and configs of every part present in a single-file checkpoint."""
    family = detect_family(shapes)
    layout = CheckpointLayout(family=family, scheduler=copy.deepcopy(bundled_config(f"{family}_scheduler")))
    if family == "sdxl":
        if SDXL_CLIP_L_PREFIX + "embeddings.token_embedding.weight" in shapes:
            layout.text_encoder = sd1_text_encoder_config(shapes, SDXL_CLIP_L_PREFIX, "sdxl_text_encoder")
        if SDXL_CLIP_G_PREFIX + "token_embedding.weight" in shapes:
            layout.text_encoder_2 = open_clip_config(shapes)
    elif family == "sd2" and SD2_CLIP_PREFIX + "token_embedding.weight" in shapes:
        layout.text_encoder = open_clip_config(shapes, SD2_CLIP_PREFIX, "sd2_text_encoder")
    elif SD1_CLIP_PREFIX + "embeddings.token_embedding.weight" in shapes:
        layout.text_encoder = sd1_text_encoder_config(shapes)
    if any(k.startswith(UNET_PREFIX) for k in shapes):
        pooled = layout.text_encoder_2["projection_dim"] if layout.text_encoder_2 else 1280
        layout.unet = unet_config(shapes, family, pooled_dim=pooled)
        layout.scheduler["prediction_type"] = prediction_type(shapes, family, layout.unet)
        if "ztsnr" in shapes:
            layout.scheduler["rescale_betas_zero_snr"] = True
    if VAE_PREFIX + "encoder.conv_in.weight" in shapes:
        layout.vae = vae_config(shapes, family)
    return layout
