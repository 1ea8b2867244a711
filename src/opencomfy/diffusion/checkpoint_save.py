"""Writing MODEL, CLIP, VAE (and CLIP_VISION) back to safetensors in the layout ComfyUI writes.

A saved checkpoint is the single-file LDM layout every loader reads: ``model.diffusion_model.*``,
``first_stage_model.*``, and the text encoders where that family keeps them
(``cond_stage_model.transformer.text_model.*`` for SD 1.x, open_clip's layout under
``cond_stage_model.model.`` for SD 2.x, ``conditioner.embedders.0/1.`` for SDXL). Weights are
written as the value sees them, its weight patches (LoRAs, merges) applied. The metadata follows
ComfyUI: ``modelspec.*`` keys, the prompt and workflow JSON unless ``--disable-metadata``.
"""

from __future__ import annotations

import json
import os

import torch

from opencomfy.diffusion.ldm_keys import (SD1_CLIP_PREFIX, SD2_CLIP_PREFIX, SDXL_CLIP_G_PREFIX,
                                         SDXL_CLIP_L_PREFIX, UNET_PREFIX, VAE_PREFIX, open_clip_to_ldm,
                                         sd1_clip_to_ldm, unet_key_to_ldm, vae_to_ldm)
from opencomfy.diffusion.memory import models_in_use
from opencomfy.diffusion.merge import comfy_clip_name


def _patched_state(handle, modules: list) -> list[dict[str, torch.Tensor]]:
    """Each module's state dict on the CPU, with the handle's weight patches applied (copied
    while they are on: the patches come off afterwards)."""
    if not getattr(handle, "patches", None):
        return [{k: v.detach().cpu() for k, v in m.state_dict().items()} for m in modules]
    with models_in_use(handle):
        return [{k: v.detach().to("cpu", copy=True) for k, v in m.state_dict().items()} for m in modules]


def unet_state_dict(model) -> dict[str, torch.Tensor]:
    """A MODEL's UNet as ``model.diffusion_model.<LDM path>`` tensors."""
    unet = model.model.diffusion_model
    config = unet.config
    with_attention = {i for i, t in enumerate(config.up_block_types) if "CrossAttn" in t}
    [state] = _patched_state(model, [unet])
    out = {}
    for name, tensor in state.items():
        try:
            name = unet_key_to_ldm(name, layers_per_block=config.layers_per_block,
                                   up_blocks_with_attention=with_attention)
        except KeyError:
            pass    # a weight LDM has no name for: kept under diffusers' name
        out[UNET_PREFIX + name] = tensor
    return out


def clip_state_dict(clip) -> dict[str, torch.Tensor]:
    """A CLIP's towers under the checkpoint prefixes of its family (told by its towers)."""
    parts = getattr(clip, "parts", None)
    if parts is None:
        raise ValueError(f"cannot save this CLIP ({clip!r}): only text encoders loaded by this server can be saved")
    keys = [p.key for p in parts]
    states = dict(zip(keys, _patched_state(clip, [p.model for p in parts]), strict=True))
    if keys == ["l"]:
        return sd1_clip_to_ldm(states["l"], SD1_CLIP_PREFIX)
    if keys == ["h"]:
        return open_clip_to_ldm(states["h"], SD2_CLIP_PREFIX)
    if keys == ["l", "g"]:
        return {**sd1_clip_to_ldm(states["l"], SDXL_CLIP_L_PREFIX), **open_clip_to_ldm(states["g"], SDXL_CLIP_G_PREFIX)}
    raise ValueError(f"cannot save a CLIP with towers {keys} into a checkpoint")


def clip_towers(clip) -> dict[str, dict[str, torch.Tensor]]:
    """Each tower's weights in transformers' names (``text_model.*``), by ComfyUI's tower name
    (``clip_l``, ``clip_g``, ``clip_h``): what CLIPSave writes, one file per tower."""
    parts = getattr(clip, "parts", None)
    if parts is None:
        raise ValueError(f"cannot save this CLIP ({clip!r}): only text encoders loaded by this server can be saved")
    states = _patched_state(clip, [p.model for p in parts])
    out = {}
    for part, state in zip(parts, states, strict=True):
        out[f"clip_{part.key}"] = {comfy_clip_name(k): v for k, v in state.items()
                                   if not k.endswith("position_ids")}
    return out


def vae_state_dict(vae, prefix: str = VAE_PREFIX) -> dict[str, torch.Tensor]:
    """A VAE in the LDM layout (``first_stage_model.`` in checkpoints, no prefix alone)."""
    autoencoder = getattr(vae, "autoencoder", None)
    if autoencoder is None or not hasattr(autoencoder, "config"):
        raise ValueError(f"cannot save this VAE ({vae!r}): only full VAEs loaded by this server can be saved "
                         "(approximations and pixel space have no weights to write)")
    state = {k: v.detach().cpu() for k, v in autoencoder.state_dict().items()}
    out = vae_to_ldm(state, dict(autoencoder.config))
    return {prefix + k[len(VAE_PREFIX):]: v for k, v in out.items()}


def checkpoint_metadata(model, *, title: str, prompt=None, extra_pnginfo=None,
                        with_prompt: bool = True) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """(metadata, extra tensors) as ComfyUI writes them: the model spec for SDXL, the
    prediction key (and a ``v_pred`` marker tensor for v-prediction models), prompt, workflow."""
    from opencomfy.diffusion.model_sampling_flow import ModelType, model_type_of

    metadata: dict[str, str] = {}
    extra: dict[str, torch.Tensor] = {}
    if model is not None:
        unet = model.model.diffusion_model
        if getattr(model, "family", None) == "sdxl":
            edit = int(unet.config.in_channels) == 8
            metadata["modelspec.architecture"] = ("stable-diffusion-xl-v1-edit" if edit
                                                  else "stable-diffusion-xl-v1-base")
            metadata["modelspec.sai_model_spec"] = "1.0.0"
            metadata["modelspec.implementation"] = "sgm"
            metadata["modelspec.title"] = title
        sampling = model.get_model_object("model_sampling")
        kind = model_type_of(sampling)
        if kind == ModelType.EPS:
            metadata["modelspec.predict_key"] = "epsilon"
        elif kind == ModelType.V_PREDICTION:
            metadata["modelspec.predict_key"] = "v"
            extra["v_pred"] = torch.tensor([])
            if getattr(sampling, "zsnr", False):
                extra["ztsnr"] = torch.tensor([])
    if with_prompt:
        metadata.update(prompt_metadata(prompt, extra_pnginfo))
    return metadata, extra


def prompt_metadata(prompt, extra_pnginfo) -> dict[str, str]:
    """``prompt`` (the API prompt's JSON, empty without one) and one key per extra_pnginfo entry."""
    out = {"prompt": json.dumps(prompt) if prompt is not None else ""}
    for key, value in (extra_pnginfo or {}).items():
        out[key] = json.dumps(value)
    return out


def save_checkpoint(path: str, *, model=None, clip=None, vae=None, clip_vision=None,
                    metadata: dict | None = None, extra_keys: dict | None = None) -> None:
    """Write the given parts into one safetensors file at ``path``."""
    from safetensors.torch import save_file

    state: dict[str, torch.Tensor] = {}
    if model is not None:
        state.update(unet_state_dict(model))
    if clip is not None:
        state.update(clip_state_dict(clip))
    if vae is not None:
        state.update(vae_state_dict(vae))
    if clip_vision is not None:
        state.update({k: v.detach().cpu() for k, v in clip_vision.get_sd().items()})
    state.update(extra_keys or {})
    save_file({k: v.contiguous() for k, v in state.items()}, path, metadata=metadata or None)


def save_tensors(path: str, tensors: dict, metadata: dict | None = None) -> None:
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in tensors.items()}, path, metadata=metadata or None)


def numbered_path(filename_prefix: str, output_dir: str) -> tuple[str, str, int]:
    """(full path, file stem, counter) of the next ``<prefix>_<counter:05>_.safetensors`` in
    the output folder, the file created empty so no other save takes the name."""
    from opencomfy.compat import folder_paths

    target = folder_paths.resolve_save_target(filename_prefix, output_dir)
    os.makedirs(target.full_output_folder, exist_ok=True)
    while True:
        counter = folder_paths.claim_save_counter(target.full_output_folder, target.filename)
        path = os.path.join(target.full_output_folder, f"{target.filename}_{counter:05}_.safetensors")
        try:
            with open(path, "xb"):
                pass
        except FileExistsError:
            continue
        folder_paths.note_saved(target.full_output_folder, target.filename)
        return path, target.filename, counter
