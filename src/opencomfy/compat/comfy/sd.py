"""ComfyUI's ``comfy.sd``: loading checkpoints, diffusion models, text encoders, VAEs and style
models, and LoRAs onto a MODEL and CLIP, over :mod:`opencomfy.diffusion.loading`.

What these return are the values the core loader nodes output (the same cached objects for
the same file), so they mix freely with core nodes. ``VAE`` and ``CLIP`` are classes that
every VAE / CLIP value of ours is an instance of; ``VAE(sd=state_dict)`` builds one from
weights, as packs with their own VAE loaders do.
"""

from __future__ import annotations

import enum
import importlib
import logging
import os
import sys

import torch

from opencomfy.compat.model_placeholders import ModelBackendUnavailable, module_getattr
from opencomfy.diffusion.model_and_vae import VAE as _OurVAE
from opencomfy.diffusion.text_encoder import TextEncoder as _OurCLIP

log = logging.getLogger(__name__)


class CLIPType(enum.Enum):
    """The text encoder families ComfyUI's ``load_clip`` knows (STABLE_DIFFUSION loads here)."""

    STABLE_DIFFUSION = 1
    STABLE_CASCADE = 2
    SD3 = 3
    STABLE_AUDIO = 4
    HUNYUAN_DIT = 5
    FLUX = 6
    MOCHI = 7
    LTXV = 8
    HUNYUAN_VIDEO = 9
    PIXART = 10
    COSMOS = 11
    LUMINA2 = 12
    WAN = 13
    HIDREAM = 14
    CHROMA = 15
    ACE = 16
    OMNIGEN2 = 17
    QWEN_IMAGE = 18
    HUNYUAN_IMAGE = 19


class _IncludesOurs(type):
    """``isinstance(value, comfy.sd.VAE)`` holds for every VAE of ours, not only those built
    through this class (the loader nodes build the base class)."""

    def __instancecheck__(cls, obj) -> bool:
        ours = cls.__dict__.get("_accepts")
        if ours is not None and isinstance(obj, ours):
            return True
        return super().__instancecheck__(obj)


class VAE(_OurVAE, metaclass=_IncludesOurs):
    """ComfyUI's VAE. ``VAE(sd=state_dict)`` builds an SD-family AutoencoderKL from LDM
    weights (with or without ``first_stage_model.``)."""

    _accepts = _OurVAE

    def __init__(self, sd=None, device=None, config=None, dtype=None, metadata=None):
        if sd is None or config is not None:
            raise ValueError("comfy.sd.VAE needs sd=<a VAE state dict> (configs are not supported)")
        from opencomfy.diffusion.ldm_keys import VAE_PREFIX
        from opencomfy.diffusion.loading import build_vae, vae_config

        if not any(k.startswith(VAE_PREFIX) for k in sd):
            sd = {VAE_PREFIX + k: v for k, v in sd.items()}
        config = vae_config({k: tuple(v.shape) for k, v in sd.items()}, "sd1")
        super().__init__(autoencoder=build_vae(sd, config))


class CLIP(_OurCLIP, metaclass=_IncludesOurs):
    """ComfyUI's CLIP (text encoder + tokenizer). Build one with :func:`load_clip` or
    :func:`load_checkpoint_guess_config`; every CLIP value of ours is an instance."""

    _accepts = _OurCLIP

    def __init__(self, target=None, embedding_directory=None, no_init=False, tokenizer_data=None,
                 parameters=0, model_options=None):
        raise ModelBackendUnavailable("comfy.sd.CLIP(target=...) is not available: opencomfy builds "
                                      "CLIP objects from files (comfy.sd.load_clip)")


def _style_model_class():
    from opencomfy.diffusion.style_model import StyleModel

    return StyleModel


def _cached(path: str, kind: str, load):
    from opencomfy.diffusion import cache

    return cache.get_or_load(cache.file_key(path, kind), lambda: load(path))


def _existing(path) -> str:
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"model file not found: {path}")
    return path


def load_checkpoint_guess_config(ckpt_path, output_vae=True, output_clip=True, output_clipvision=False,
                                 embedding_directory=None, output_model=True, model_options=None,
                                 te_model_options=None):
    """(MODEL, CLIP, VAE, CLIP_VISION) from a single-file checkpoint, the architecture told
    from the weights; a part not asked for (or not in the file) is None. No checkpoint we load
    carries a CLIP vision model, so the last value is None."""
    from opencomfy.diffusion.loading import load_checkpoint_file

    model, clip, vae = _cached(_existing(ckpt_path), "checkpoint", load_checkpoint_file)
    if output_model and model is None:
        raise RuntimeError(f"ERROR: could not detect model type of: {ckpt_path}")
    return (model if output_model else None, clip if output_clip else None,
            vae if output_vae else None, None)


def load_state_dict_guess_config(sd, output_vae=True, output_clip=True, output_clipvision=False,
                                 embedding_directory=None, output_model=True, model_options=None,
                                 te_model_options=None, metadata=None):
    """:func:`load_checkpoint_guess_config` for a state dict already in memory."""
    from opencomfy.diffusion.loading import build_checkpoint

    model, clip, vae = build_checkpoint(sd)
    if output_model and model is None:
        return None
    return (model if output_model else None, clip if output_clip else None,
            vae if output_vae else None, None)


def load_checkpoint(config_path=None, ckpt_path=None, output_vae=True, output_clip=True,
                    embedding_directory=None, state_dict=None, config=None):
    """ComfyUI's older loader: (MODEL, CLIP, VAE); the config file is not needed (the
    architecture is detected from the weights)."""
    if state_dict is not None:
        loaded = load_state_dict_guess_config(state_dict, output_vae, output_clip)
        if loaded is None:
            raise RuntimeError("ERROR: could not detect model type of the state dict")
    else:
        loaded = load_checkpoint_guess_config(ckpt_path, output_vae, output_clip)
    return loaded[:3]


def _weight_dtype_option(model_options) -> str:
    dtype = (model_options or {}).get("dtype")
    if dtype == torch.float8_e4m3fn:
        return "fp8_e4m3fn"
    return "fp8_e5m2" if dtype == torch.float8_e5m2 else "default"


def load_diffusion_model(unet_path, model_options=None):
    """A MODEL from a diffusion-model-only file (what UNETLoader loads)."""
    from opencomfy.diffusion.loading import load_unet_file

    option = _weight_dtype_option(model_options)
    return _cached(_existing(unet_path), f"unet-{option}", lambda path: load_unet_file(path, option))


def load_diffusion_model_state_dict(sd, model_options=None, metadata=None):
    """A MODEL from diffusion-model weights already in memory."""
    from opencomfy.diffusion.loading import unet_from_state_dict

    return unet_from_state_dict(sd, _weight_dtype_option(model_options))


load_unet = load_diffusion_model
load_unet_state_dict = load_diffusion_model_state_dict


def load_clip(ckpt_paths, embedding_directory=None, clip_type=CLIPType.STABLE_DIFFUSION, model_options=None):
    """A CLIP from one text encoder file (SD 1.x CLIP-L) or two (SDXL's CLIP-L and OpenCLIP-G)."""
    from opencomfy.diffusion import cache
    from opencomfy.diffusion.loading import load_clip_file, load_dual_clip_files

    if isinstance(ckpt_paths, (str, os.PathLike)):
        ckpt_paths = [ckpt_paths]
    paths = [_existing(p) for p in ckpt_paths]
    if clip_type != CLIPType.STABLE_DIFFUSION:
        name = getattr(clip_type, "name", clip_type)
        raise ValueError(f"load_clip: the {name} text encoders are not supported yet (STABLE_DIFFUSION is)")
    if len(paths) == 1:
        return _cached(paths[0], "clip", load_clip_file)
    if len(paths) == 2:
        key = ("dual_clip", "sdxl", cache.file_key(paths[0]), cache.file_key(paths[1]))
        return cache.get_or_load(key, lambda: load_dual_clip_files(paths[0], paths[1], "sdxl"))
    raise ValueError(f"load_clip takes one or two files, got {len(paths)}")


def load_style_model(ckpt_path):
    """A STYLE_MODEL (T2I style adapter or Flux Redux) from a file."""
    from opencomfy.diffusion.style_model import load_style_model_file

    return _cached(_existing(ckpt_path), "style_model", load_style_model_file)


def load_lora_for_models(model, clip, lora: dict, strength_model: float, strength_clip: float):
    """(MODEL, CLIP) clones patched by a LoRA state dict at the given strengths; either may be
    None. The same patching as the LoraLoader node, so the results sample identically."""
    from opencomfy.diffusion.lora import LoraFile

    parsed = LoraFile(lora)
    new_model = new_clip = None
    if model is not None:
        new_model = model.clone()
        if strength_model != 0:
            new_model.patches.append((parsed.for_unet(model.unet), strength_model))
    if clip is not None:
        new_clip = clip.clone()
        if strength_clip != 0:
            new_clip.patches.extend((patch, strength_clip) for patch in parsed.for_text_encoder(clip))
    if model is not None and clip is not None:
        parsed.warn_unmatched("the LoRA")
    return new_model, new_clip


_PENDING = frozenset({"load_gligen", "save_checkpoint", "load_text_encoder_state_dicts",
                      "load_model_weights", "load_bypass_lora_for_models", "TEModel", "detect_te_model",
                      "t5xxl_detect", "llama_detect"})
_pending = module_getattr("comfy.sd", _PENDING, "not implemented in opencomfy's comfy.sd yet")


def __getattr__(name: str):
    if name == "StyleModel":
        return _style_model_class()
    if name == "model_detection":
        # ComfyUI's sd.py imports it; ours is a placeholder module (no model code).
        from opencomfy.compat import aliases, model_placeholders

        if aliases.installed():
            return importlib.import_module("comfy.model_detection")
        return sys.modules.get("comfy.model_detection") or model_placeholders.make_module("comfy.model_detection")
    return _pending(name)
