"""Load single-file checkpoints (LDM layout) into diffusers and transformers modules, offline.

The layout is detected from the weights (:mod:`detect`); diffusers' own converters rename the
keys; modules are built on the meta device and the converted tensors assigned to them, so
nothing is initialised twice and nothing is fetched.
"""

from __future__ import annotations

import logging
import os

import torch

from opencomfy.diffusion.detect import (CheckpointLayout, UnsupportedCheckpoint, detect_layout,
                                        looks_v_prediction, sd1_text_encoder_config, vae_config)
from opencomfy.diffusion.ldm_keys import (SD1_CLIP_PREFIX, SD2_CLIP_PREFIX, SDXL_CLIP_G_PREFIX,
                                         SDXL_CLIP_L_PREFIX, VAE_PREFIX)
from opencomfy.diffusion.memory import offload_device
from opencomfy.weights import PickleRefused, assign_weights, read_state_dict  # noqa: F401  (re-exported)

log = logging.getLogger(__name__)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

def _shapes(state_dict: dict) -> dict[str, tuple]:
    return {k: tuple(v.shape) for k, v in state_dict.items()}


def _assign(module, state_dict: dict, kind: str):
    """Give a meta-device module its weights, then park it on the offload device. The weights
    are rounded through ComfyUI's storage dtype for ``kind`` (see :mod:`precision`)."""
    from opencomfy.diffusion.memory import compute_device
    from opencomfy.diffusion.precision import load_dtypes, round_through

    storage, compute = load_dtypes(kind, compute_device())
    return assign_weights(module, round_through(state_dict, storage, compute), compute, offload_device())


def build_unet(state_dict: dict, config: dict):
    from accelerate import init_empty_weights
    from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint

    converted = convert_ldm_unet_checkpoint(state_dict, config)
    with init_empty_weights():
        unet = UNet2DConditionModel.from_config(config)
    return _assign(unet, converted, "unet")


def build_vae(state_dict: dict, config: dict):
    from accelerate import init_empty_weights
    from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    converted = convert_ldm_vae_checkpoint(state_dict, config)
    with init_empty_weights():
        vae = AutoencoderKL.from_config(config)
    return _assign(vae, converted, "vae")


def build_sd1_text_encoder(state_dict: dict, config: dict, prefix: str = SD1_CLIP_PREFIX):
    from accelerate import init_empty_weights
    from transformers import CLIPTextConfig, CLIPTextModel

    with init_empty_weights():
        model = CLIPTextModel(CLIPTextConfig(**config))
    wants_prefix = any(k.startswith("text_model.") for k in model.state_dict())
    own = {}
    for key, value in state_dict.items():
        if key.startswith(prefix):
            name = key[len(prefix):]
            if name == "embeddings.position_ids":
                continue
            own[("text_model." + name) if wants_prefix else name] = value
    return _assign(model, own, "text_encoder")


def build_open_clip_text_encoder(state_dict: dict, config: dict, prefix: str = SDXL_CLIP_G_PREFIX):
    """An OpenCLIP text tower (SDXL's G, SD 2.x's H) as a transformers
    CLIPTextModelWithProjection, with every layer (SD 2.x picks the penultimate at encode time)."""
    from accelerate import init_empty_weights
    from diffusers.loaders.single_file_utils import convert_open_clip_checkpoint
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    with init_empty_weights():
        model = CLIPTextModelWithProjection(CLIPTextConfig(**config))
    # diffusers' converter drops SD 2.x's last layer and projection when it sees their usual
    # prefix; a neutral prefix keeps every weight.
    own = {"tower." + k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
    converted = convert_open_clip_checkpoint(model, own, prefix="tower.")
    if "text_projection.weight" not in converted:
        converted["text_projection.weight"] = torch.eye(config["projection_dim"], config["hidden_size"])
    if not any(k.startswith("text_model.") for k in model.state_dict()):
        converted = {(k[len("text_model."):] if k.startswith("text_model.") else k): v
                     for k, v in converted.items()}
    return _assign(model, converted, "text_encoder")


def sd1_clip(text_model):
    """An SD 1.x CLIP object around a CLIP-L text model."""
    from opencomfy.diffusion.text_encoder import ClipPart, TextEncoder
    from opencomfy.diffusion.tokenizer import clip_tokenizer

    return TextEncoder(parts=[ClipPart("l", text_model)], tokenizer=clip_tokenizer())


def sdxl_clip(clip_l, clip_g):
    """SDXL's CLIP object: CLIP-L and OpenCLIP-G, penultimate layers, pooled from G."""
    from opencomfy.diffusion.text_encoder import ClipPart, TextEncoder
    from opencomfy.diffusion.tokenizer import clip_tokenizer

    parts = [ClipPart("l", clip_l, norm_hidden=False, lora_prefixes=("lora_te1_",)),
             ClipPart("g", clip_g, pad_id=0, norm_hidden=False, lora_prefixes=("lora_te2_",))]
    return TextEncoder(parts=parts, tokenizer=clip_tokenizer(), layer_idx=-2, pooled_from="g")


def sd2_clip(clip_h):
    """SD 2.x's CLIP object: OpenCLIP-H, penultimate layer with the final norm, 0-padded."""
    from opencomfy.diffusion.text_encoder import ClipPart, TextEncoder
    from opencomfy.diffusion.tokenizer import clip_tokenizer

    return TextEncoder(parts=[ClipPart("h", clip_h, pad_id=0)], tokenizer=clip_tokenizer(),
                       layer_idx=-2, pooled_from="h")


def build_checkpoint(state_dict: dict, layout: CheckpointLayout | None = None):
    """(MODEL, CLIP, VAE) objects from a full single-file checkpoint (None for absent parts)."""
    from opencomfy.diffusion.model_sampling import DiscreteSchedule
    from opencomfy.diffusion.model_and_vae import VAE, DiffusionModel

    layout = layout or detect_layout(_shapes(state_dict))
    sdxl = layout.family == "sdxl"
    if (layout.family == "sd2" and layout.unet is not None and layout.unet["in_channels"] == 4
            and "v_pred" not in state_dict and looks_v_prediction(state_dict)):
        layout.scheduler["prediction_type"] = "v_prediction"
    model = clip = vae = None
    if layout.unet is not None:
        default_scale = 0.13025 if sdxl else 0.18215
        scale = (layout.vae or {}).get("scaling_factor", default_scale)
        model = DiffusionModel(unet=build_unet(state_dict, layout.unet),
                               schedule=DiscreteSchedule.from_config(layout.scheduler),
                               scale_factor=scale, family=layout.family)
    if sdxl and layout.text_encoder is not None and layout.text_encoder_2 is not None:
        clip = sdxl_clip(build_sd1_text_encoder(state_dict, layout.text_encoder, SDXL_CLIP_L_PREFIX),
                         build_open_clip_text_encoder(state_dict, layout.text_encoder_2))
    elif layout.family == "sd2" and layout.text_encoder is not None:
        clip = sd2_clip(build_open_clip_text_encoder(state_dict, layout.text_encoder, SD2_CLIP_PREFIX))
    elif layout.family == "sd1" and layout.text_encoder is not None:
        clip = sd1_clip(build_sd1_text_encoder(state_dict, layout.text_encoder))
    if layout.vae is not None:
        vae = VAE(autoencoder=build_vae(state_dict, layout.vae))
    return model, clip, vae


def load_checkpoint_file(path: str):
    """(MODEL, CLIP, VAE) from a checkpoint file."""
    return build_checkpoint(read_state_dict(path))


def load_vae_file(path: str):
    """A VAE from a standalone VAE file (LDM keys with or without ``first_stage_model.``)."""
    from opencomfy.diffusion.model_and_vae import VAE

    state_dict = read_state_dict(path)
    if not any(k.startswith(VAE_PREFIX) for k in state_dict):
        state_dict = {VAE_PREFIX + k: v for k, v in state_dict.items()}
    config = vae_config(_shapes(state_dict), "sd1")
    return VAE(autoencoder=build_vae(state_dict, config))


def load_clip_file(path: str):
    """An SD1 CLIP-L text encoder from a standalone file (transformers or LDM key names)."""
    state_dict = read_state_dict(path)
    if not any(k.startswith(SD1_CLIP_PREFIX) for k in state_dict):
        state_dict = {SD1_CLIP_PREFIX + (k[len("text_model."):] if k.startswith("text_model.") else k): v
                      for k, v in state_dict.items()}
    config = sd1_text_encoder_config(_shapes(state_dict))
    return sd1_clip(build_sd1_text_encoder(state_dict, config))


def _family_of_unet(shapes: dict) -> str:
    from opencomfy.diffusion.ldm_keys import UNET_PREFIX

    if UNET_PREFIX + "label_emb.0.0.weight" in shapes:
        return "sdxl"
    proj = shapes.get(UNET_PREFIX + "middle_block.1.proj_in.weight", ())
    return "sd2" if len(proj) == 2 else "sd1"


def load_unet_file(path: str, weight_dtype_option: str = "default"):
    """A MODEL from a diffusion-model-only file in the LDM layout (with or without the
    ``model.diffusion_model.`` prefix): SD 1.x, SD 2.x or SDXL, told apart by the weights."""
    return unet_from_state_dict(read_state_dict(path), weight_dtype_option, os.path.basename(path))


def unet_from_state_dict(state_dict: dict, weight_dtype_option: str = "default", name: str = "the weights"):
    """:func:`load_unet_file` for weights already in memory (``comfy.sd.load_diffusion_model_state_dict``)."""
    import copy

    from opencomfy.diffusion.detect import bundled_config, prediction_type, unet_config
    from opencomfy.diffusion.ldm_keys import UNET_PREFIX
    from opencomfy.diffusion.model_sampling import DiscreteSchedule
    from opencomfy.diffusion.model_and_vae import DiffusionModel

    if not any(k.startswith(UNET_PREFIX) for k in state_dict):
        if "input_blocks.0.0.weight" not in state_dict:
            raise UnsupportedCheckpoint(f"{name}: not a UNet in the LDM layout "
                                        "(diffusers-format UNet files are not supported yet)")
        state_dict = {UNET_PREFIX + k: v for k, v in state_dict.items()}
    shapes = _shapes(state_dict)
    family = _family_of_unet(shapes)
    config = unet_config(shapes, family)
    schedule_config = copy.deepcopy(bundled_config(f"{family}_scheduler"))
    schedule_config["prediction_type"] = prediction_type(shapes, family, config, norms=state_dict)
    unet = build_unet(state_dict, config)
    if weight_dtype_option.startswith("fp8") and hasattr(unet, "enable_layerwise_casting"):
        storage = torch.float8_e5m2 if weight_dtype_option == "fp8_e5m2" else torch.float8_e4m3fn
        unet.enable_layerwise_casting(storage_dtype=storage, compute_dtype=unet.dtype)
    sdxl = family == "sdxl"
    return DiffusionModel(unet=unet, schedule=DiscreteSchedule.from_config(schedule_config),
                          scale_factor=0.13025 if sdxl else 0.18215, family=family)


def _text_tower(path: str):
    """A standalone text encoder file -> ("clip_l" | "open_clip", module, layer count).

    Accepts transformers key names (with or without ``text_model.``), SD1-checkpoint names and
    open_clip's layout."""
    from opencomfy.diffusion.detect import open_clip_config

    state_dict = read_state_dict(path)
    if any(k.startswith("transformer.resblocks.") for k in state_dict):
        prefix = "open_clip."
        state_dict = {prefix + k: v for k, v in state_dict.items()}
        config = open_clip_config(_shapes(state_dict), prefix)
        return "open_clip", build_open_clip_text_encoder(state_dict, config, prefix), config["num_hidden_layers"]
    projection = next((v for k, v in state_dict.items() if k.endswith("text_projection.weight")), None)
    if not any(k.startswith(SD1_CLIP_PREFIX) for k in state_dict):
        state_dict = {SD1_CLIP_PREFIX + (k[len("text_model."):] if k.startswith("text_model.") else k): v
                      for k, v in state_dict.items() if not k.endswith("text_projection.weight")
                      and not k.endswith("logit_scale")}
    config = sd1_text_encoder_config(_shapes(state_dict))
    if projection is None:
        return "clip_l", build_sd1_text_encoder(state_dict, config), config["num_hidden_layers"]
    # A tower with a projection in transformers' names: OpenCLIP-G/H when wide (GELU), else a
    # projected CLIP-L (quick GELU). The activation is not visible in the weights.
    config["projection_dim"] = projection.shape[0]
    config["hidden_act"] = "gelu" if config["hidden_size"] >= 1024 else "quick_gelu"
    model = _build_projected(state_dict, config, projection)
    return "with_projection", model, config["num_hidden_layers"]


def _build_projected(state_dict: dict, config: dict, projection: torch.Tensor, prefix: str = SD1_CLIP_PREFIX):
    from accelerate import init_empty_weights
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    with init_empty_weights():
        model = CLIPTextModelWithProjection(CLIPTextConfig(**config))
    wants_prefix = any(k.startswith("text_model.") for k in model.state_dict())
    own = {("text_model." if wants_prefix else "") + k[len(prefix):]: v
           for k, v in state_dict.items() if k.startswith(prefix) and not k.endswith("position_ids")}
    own["text_projection.weight"] = projection
    return _assign(model, own, "text_encoder")


def load_dual_clip_files(path_1: str, path_2: str, kind: str = "sdxl"):
    """SDXL's CLIP from two files: CLIP-L and OpenCLIP-G, in either order (CLIP-L is the one
    with fewer layers; at equal depth, the one without a text projection)."""
    if kind != "sdxl":
        raise UnsupportedCheckpoint(f"DualCLIPLoader type {kind!r} is not supported yet (sdxl is)")
    first, second = sorted((_text_tower(path_1), _text_tower(path_2)),
                           key=lambda tower: (tower[2], tower[0] != "clip_l"))
    clip_g = second[1]
    if not hasattr(clip_g, "text_projection"):
        raise UnsupportedCheckpoint("the OpenCLIP-G file has no text projection")
    return sdxl_clip(first[1], clip_g)
