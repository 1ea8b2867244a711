"""The less common loaders: CheckpointLoader (with a config), DiffusersLoader,
HypernetworkLoader, ImageOnlyCheckpointLoader and LoraModelLoader."""

from __future__ import annotations

import os

from opencomfy.compat import folder_paths
from opencomfy.diffusion import available
from opencomfy.nodes.v3_schema import V3SchemaNode


def _cached(key: tuple, load):
    from opencomfy.diffusion import cache

    return cache.get_or_load(key, load)


class CheckpointLoader:
    """A checkpoint plus an LDM config file (the config's v-prediction and CLIP layer apply)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"config_name": (folder_paths.get_filename_list("configs"),),
                             "ckpt_name": (folder_paths.get_filename_list("checkpoints"),)}}

    RETURN_TYPES = ("MODEL", "CLIP", "VAE")
    FUNCTION = "load_checkpoint"
    CATEGORY = "advanced/loaders"
    DEPRECATED = True

    def load_checkpoint(self, config_name, ckpt_name):
        import yaml

        from opencomfy.diffusion import cache
        from opencomfy.diffusion.loading import load_checkpoint_file

        config_path = folder_paths.get_full_path_or_raise("configs", config_name)
        ckpt_path = folder_paths.get_full_path_or_raise("checkpoints", ckpt_name)
        with open(config_path, encoding="utf-8") as f:
            try:
                config = yaml.safe_load(f)
            except yaml.YAMLError as exc:
                raise ValueError(f"{config_name} is not valid YAML: {exc}") from exc
        try:
            params = config["model"]["params"]
        except (KeyError, TypeError) as exc:
            raise ValueError(f"{config_name} is not an LDM model config (no model.params)") from exc
        model, clip, vae = cache.get_or_load(cache.file_key(ckpt_path, "checkpoint"),
                                             lambda: load_checkpoint_file(ckpt_path))
        if model is None:
            raise RuntimeError(f"ERROR: {ckpt_name} has no diffusion model")
        if params.get("parameterization") == "v":
            model = model.clone()
            model.schedule = model.schedule.with_prediction("v_prediction")
        layer_idx = ((params.get("cond_stage_config") or {}).get("params") or {}).get("layer_idx")
        if layer_idx is not None and clip is not None:
            clip = clip.clone()
            clip.clip_layer(int(layer_idx))
        return (model, clip, vae)


def diffusers_folders() -> list[str]:
    """Every folder under ``models/diffusers`` holding a ``model_index.json``, relative."""
    found = []
    for root_dir in folder_paths.get_folder_paths("diffusers"):
        if not os.path.isdir(root_dir):
            continue
        for root, _dirs, files in os.walk(root_dir, followlinks=True):
            if "model_index.json" in files:
                found.append(os.path.relpath(root, start=root_dir))
    return found


class DiffusersLoader:
    """A diffusers pipeline folder under ``models/diffusers`` -> MODEL, CLIP, VAE."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model_path": (diffusers_folders(),)}}

    RETURN_TYPES = ("MODEL", "CLIP", "VAE")
    FUNCTION = "load_checkpoint"
    CATEGORY = "advanced/loaders/deprecated"

    def load_checkpoint(self, model_path, output_vae=True, output_clip=True):
        from opencomfy.diffusion import cache
        from opencomfy.diffusion.diffusers_folder import load_diffusers_folder

        # Only the listed folders: a name with ".." or an absolute path never leaves the root.
        if model_path not in diffusers_folders():
            raise FileNotFoundError(f"{model_path} is not a diffusers folder under models/diffusers")
        for root_dir in folder_paths.get_folder_paths("diffusers"):
            folder = os.path.join(root_dir, model_path)
            if os.path.isfile(os.path.join(folder, "model_index.json")):
                index = os.path.join(folder, "model_index.json")
                model, clip, vae = cache.get_or_load(cache.file_key(index, "diffusers"),
                                                     lambda f=folder: load_diffusers_folder(f))
                return (model, clip if output_clip else None, vae if output_vae else None)
        raise FileNotFoundError(f"{model_path} is not a diffusers folder under models/diffusers")


class HypernetworkLoader:
    """Patch the MODEL's attention with a hypernetwork file."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",),
                             "hypernetwork_name": (folder_paths.get_filename_list("hypernetworks"),),
                             "strength": ("FLOAT", {"default": 1.0, "min": -10.0, "max": 10.0, "step": 0.01})}}

    RETURN_TYPES = ("MODEL",)
    FUNCTION = "load_hypernetwork"
    CATEGORY = "loaders"

    def load_hypernetwork(self, model, hypernetwork_name, strength):
        from opencomfy.diffusion.hypernetwork import load_hypernetwork

        path = folder_paths.get_full_path_or_raise("hypernetworks", hypernetwork_name)
        patched = model.clone()
        patch = load_hypernetwork(path, strength)
        patched.set_model_attn1_patch(patch)
        patched.set_model_attn2_patch(patch)
        return (patched,)


# Where image-conditioned checkpoints keep their CLIP vision tower.
_VISION_PREFIXES = ("conditioner.embedders.0.open_clip.model.", "embedder.model.", "")


def _clip_vision_in(state_dict: dict):
    from opencomfy.diffusion.clip_vision import build_clip_vision

    for prefix in _VISION_PREFIXES:
        if f"{prefix}visual.transformer.resblocks.0.attn.in_proj_weight" in state_dict:
            own = {k[len(prefix):]: v for k, v in state_dict.items()
                   if k.startswith(prefix + "visual.")}
            return build_clip_vision(own, "checkpoint CLIP vision")
    if "vision_model.embeddings.patch_embedding.weight" in state_dict:
        own = {k: v for k, v in state_dict.items()
               if k.startswith(("vision_model.", "visual_projection."))}
        return build_clip_vision(own, "checkpoint CLIP vision")
    return None


class ImageOnlyCheckpointLoader:
    """A checkpoint -> MODEL, its CLIP vision tower (None when it has none) and VAE."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"ckpt_name": (folder_paths.get_filename_list("checkpoints"),)}}

    RETURN_TYPES = ("MODEL", "CLIP_VISION", "VAE")
    FUNCTION = "load_checkpoint"
    CATEGORY = "loaders/video_models"

    def load_checkpoint(self, ckpt_name, output_vae=True, output_clip=True):
        from opencomfy.diffusion import cache
        from opencomfy.diffusion.detect import UnsupportedCheckpoint
        from opencomfy.diffusion.loading import build_checkpoint, read_state_dict

        path = folder_paths.get_full_path_or_raise("checkpoints", ckpt_name)

        def load():
            state_dict = read_state_dict(path)
            if any(".time_stack." in k for k in state_dict):
                raise UnsupportedCheckpoint(f"{ckpt_name}: Stable Video Diffusion models are not supported yet")
            model, _clip, vae = build_checkpoint(state_dict)
            return model, _clip_vision_in(state_dict), vae

        model, clip_vision, vae = cache.get_or_load(cache.file_key(path, "image_only"), load)
        if model is None:
            raise RuntimeError(f"ERROR: {ckpt_name} has no diffusion model")
        return (model, clip_vision, vae)


class LoraModelLoader(V3SchemaNode):
    """Apply a LORA_MODEL (LoRA weights produced in the graph, e.g. by training) to a MODEL."""

    NODE_ID = "LoraModelLoader"
    DISPLAY_NAME = "Load LoRA Model"
    CATEGORY = "loaders"
    RELATIVE_PYTHON_MODULE = "comfy_extras.nodes_train"
    RETURN_TYPES = ("MODEL",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL", {}), "lora": ("LORA_MODEL", {}),
                             "strength_model": ("FLOAT", {"default": 1.0, "min": -100.0, "max": 100.0,
                                                          "step": 0.01})}}

    @classmethod
    def GET_NODE_INFO_V1(cls):
        info = super().GET_NODE_INFO_V1()
        info["experimental"] = True
        return info

    def execute(self, model, lora, strength_model):
        from opencomfy.diffusion.lora import LoraFile

        if strength_model == 0:
            return (model,)
        if not isinstance(lora, dict):
            raise ValueError(f"lora must be a dictionary of LoRA weights, got {type(lora).__name__}")
        patch = LoraFile(lora).for_unet(model.unet)
        if not len(patch):
            raise ValueError("none of the LoRA's weights match this model")
        patched = model.clone()
        patched.patches.append((patch, strength_model))
        return (patched,)


NODES = [
    ("CheckpointLoader", CheckpointLoader, "Load Checkpoint With Config (DEPRECATED)", "nodes"),
    ("DiffusersLoader", DiffusersLoader, "DiffusersLoader", "nodes"),
    ("HypernetworkLoader", HypernetworkLoader, "HypernetworkLoader", "comfy_extras.nodes_hypernetwork"),
    ("ImageOnlyCheckpointLoader", ImageOnlyCheckpointLoader, "Image Only Checkpoint Loader (img2vid model)",
     "comfy_extras.nodes_video_model"),
    ("LoraModelLoader", LoraModelLoader, "Load LoRA Model", "comfy_extras.nodes_train"),
]


if not available():     # the model nodes need the optional diffusion extra
    NODES = []
