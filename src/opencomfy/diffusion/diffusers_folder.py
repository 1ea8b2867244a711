"""Loading a diffusers pipeline folder (``models/diffusers/<name>/model_index.json``) into
MODEL, CLIP and VAE, offline (ComfyUI's DiffusersLoader).

Each part is read from its sub-folder (``unet``, ``vae``, ``text_encoder``, ``text_encoder_2``,
``scheduler``): the config from ``config.json`` and the weights from the safetensors file (or a
pickle ``.bin`` when pickles are allowed). Weights go through the same storage rounding as
single-file checkpoints, so a folder and the equivalent checkpoint sample the same.
"""

from __future__ import annotations

import json
import os

from opencomfy.weights import UnsupportedCheckpoint, read_state_dict

_WEIGHT_FILES = ("diffusion_pytorch_model.safetensors", "model.safetensors",
                 "diffusion_pytorch_model.bin", "pytorch_model.bin")


def _part(folder: str, name: str) -> tuple[dict, dict] | None:
    """(config, weights) of a sub-folder, or None when the pipeline has no such part."""
    sub = os.path.join(folder, name)
    config_path = os.path.join(sub, "config.json")
    if not os.path.isfile(config_path):
        return None
    with open(config_path, encoding="utf-8") as f:
        config = json.load(f)
    for file_name in _WEIGHT_FILES:
        path = os.path.join(sub, file_name)
        if os.path.isfile(path):
            return config, read_state_dict(path)
    raise UnsupportedCheckpoint(f"{name}/ of {os.path.basename(folder)} has a config but no weights "
                                f"file ({', '.join(_WEIGHT_FILES)})")


def _module_config(config: dict) -> dict:
    return {k: v for k, v in config.items() if not k.startswith("_")}


def _text_model(config: dict, weights: dict, with_projection: bool):
    from accelerate import init_empty_weights
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from opencomfy.diffusion.loading import _assign

    settings = {k: v for k, v in _module_config(config).items()
                if k not in ("architectures", "transformers_version", "torch_dtype")}
    cls = CLIPTextModelWithProjection if with_projection else CLIPTextModel
    with init_empty_weights():
        model = cls(CLIPTextConfig(**settings))
    wanted = set(model.state_dict())
    own = {k: v for k, v in weights.items() if k in wanted}
    return _assign(model, own, "text_encoder")


def load_diffusers_folder(folder: str):
    """(MODEL, CLIP, VAE) from a diffusers pipeline folder (SD 1.x, SD 2.x or SDXL)."""
    from accelerate import init_empty_weights
    from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL
    from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel

    from opencomfy.diffusion.loading import _assign, sd1_clip, sd2_clip, sdxl_clip
    from opencomfy.diffusion.model_sampling import DiscreteSchedule
    from opencomfy.diffusion.model_and_vae import VAE, DiffusionModel

    if not os.path.isfile(os.path.join(folder, "model_index.json")):
        raise UnsupportedCheckpoint(f"{os.path.basename(folder)} is not a diffusers folder (no model_index.json)")
    unet_part = _part(folder, "unet")
    if unet_part is None:
        raise UnsupportedCheckpoint(f"{os.path.basename(folder)} has no unet/ (only UNet pipelines load so far)")
    unet_config, unet_weights = unet_part
    with init_empty_weights():
        unet = UNet2DConditionModel.from_config(_module_config(unet_config))
    unet = _assign(unet, unet_weights, "unet")
    sdxl = getattr(unet.config, "addition_embed_type", None) == "text_time"
    family = "sdxl" if sdxl else ("sd2" if int(unet.config.cross_attention_dim) == 1024 else "sd1")
    vae = None
    vae_part = _part(folder, "vae")
    if vae_part is not None:
        with init_empty_weights():
            autoencoder = AutoencoderKL.from_config(_module_config(vae_part[0]))
        vae = VAE(autoencoder=_assign(autoencoder, vae_part[1], "vae"))
    scale = float(vae_part[0].get("scaling_factor", 0.13025 if sdxl else 0.18215)) if vae_part else \
        (0.13025 if sdxl else 0.18215)
    from opencomfy.diffusion.detect import bundled_config

    schedule_config = dict(bundled_config(f"{family}_scheduler"))
    schedule_path = os.path.join(folder, "scheduler", "scheduler_config.json")
    if os.path.isfile(schedule_path):
        with open(schedule_path, encoding="utf-8") as f:
            schedule_config.update(json.load(f))
    model = DiffusionModel(unet=unet, schedule=DiscreteSchedule.from_config(schedule_config),
                           scale_factor=scale, family=family)
    clip = None
    first, second = _part(folder, "text_encoder"), _part(folder, "text_encoder_2")
    if sdxl and first is not None and second is not None:
        clip = sdxl_clip(_text_model(*first, with_projection=False), _text_model(*second, with_projection=True))
    elif family == "sd2" and first is not None:
        clip = sd2_clip(_text_model(*first, with_projection=False))
    elif first is not None:
        clip = sd1_clip(_text_model(*first, with_projection=False))
    return model, clip, vae
