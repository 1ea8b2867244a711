"""Loader nodes over :mod:`opencomfy.diffusion` (ComfyUI's ``nodes.py`` loaders)."""

from __future__ import annotations

from opencomfy.compat import folder_paths


def _load_cached(kind: str, folder: str, name: str, load):
    from opencomfy.diffusion import cache

    path = folder_paths.get_full_path_or_raise(folder, name)
    return cache.get_or_load(cache.file_key(path, kind), lambda: load(path))


class CheckpointLoaderSimple:
    """A single-file checkpoint -> MODEL, CLIP, VAE (architecture detected from the weights)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "ckpt_name": (folder_paths.get_filename_list("checkpoints"),
                          {"tooltip": "Checkpoint file from the checkpoints folder."}),
        }}

    RETURN_TYPES = ("MODEL", "CLIP", "VAE")
    OUTPUT_TOOLTIPS = ("The diffusion network, for samplers.",
                       "The text encoder, for prompt nodes.",
                       "The autoencoder that maps pixels to latents and back.")
    FUNCTION = "load_checkpoint"
    CATEGORY = "loaders"
    DESCRIPTION = "Reads one checkpoint file and gives its diffusion model, text encoder and VAE."

    def load_checkpoint(self, ckpt_name):
        from opencomfy.diffusion.loading import load_checkpoint_file

        model, clip, vae = _load_cached("checkpoint", "checkpoints", ckpt_name, load_checkpoint_file)
        if model is None:
            raise RuntimeError(f"ERROR: {ckpt_name} has no diffusion model")
        return (model, clip, vae)


class VAELoader:
    """A standalone VAE file, a TAESD approximation (``models/vae_approx``) or ``pixel_space``."""

    @staticmethod
    def vae_list() -> list[str]:
        """The VAE files, then each approximation whose encoder and decoder files are present,
        then ``pixel_space``, as ComfyUI lists them."""
        from opencomfy.diffusion.approx_vae import PIXEL_SPACE, approximations_present

        approximations = approximations_present(folder_paths.get_filename_list("vae_approx"))
        return [*folder_paths.get_filename_list("vae"), *approximations, PIXEL_SPACE]

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"vae_name": (cls.vae_list(),)}}

    RETURN_TYPES = ("VAE",)
    FUNCTION = "load_vae"
    CATEGORY = "loaders"

    def load_vae(self, vae_name):
        from opencomfy.diffusion import approx_vae, cache
        from opencomfy.diffusion.loading import load_vae_file

        if vae_name == approx_vae.PIXEL_SPACE:
            return (approx_vae.PixelSpaceVAE(),)
        if vae_name in approx_vae.TAESD_LATENT_FORMATS:
            from opencomfy.diffusion.taesd import approximation_files

            paths = approximation_files(vae_name)
            key = ("taesd", vae_name, cache.file_key(paths[0]), cache.file_key(paths[1]))
            return (cache.get_or_load(key, lambda: approx_vae.load_taesd(vae_name, *paths)),)
        return (_load_cached("vae", "vae", vae_name, load_vae_file),)


#: CLIPLoader's types, as ComfyUI lists them; only ``stable_diffusion`` loads so far.
CLIP_LOADER_TYPES = ["stable_diffusion", "stable_cascade", "sd3", "stable_audio", "mochi", "ltxv",
                     "pixart", "cosmos", "lumina2", "wan", "hidream", "chroma", "ace", "omnigen2",
                     "qwen_image", "hunyuan_image"]
DUAL_CLIP_LOADER_TYPES = ["sdxl", "sd3", "flux", "hunyuan_video", "hidream", "hunyuan_image"]


class CLIPLoader:
    """A standalone text encoder file -> CLIP (SD 1.x CLIP-L so far)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "clip_name": (folder_paths.get_filename_list("text_encoders"),),
            "type": (CLIP_LOADER_TYPES,),
        }, "optional": {"device": (["default", "cpu"], {"advanced": True})}}

    RETURN_TYPES = ("CLIP",)
    FUNCTION = "load_clip"
    CATEGORY = "advanced/loaders"
    DESCRIPTION = "Loads one text encoder file. For type stable_diffusion pick a CLIP-L file."

    def load_clip(self, clip_name, type="stable_diffusion", device="default"):
        from opencomfy.diffusion.loading import load_clip_file

        if type != "stable_diffusion":
            # Listed so that workflows of every family validate; their encoders come later.
            raise ValueError(f"CLIPLoader type {type!r}: the text encoders of the {type} family are not "
                             "supported yet (stable_diffusion is)")
        return (_load_cached("clip", "text_encoders", clip_name, load_clip_file),)


class CLIPSetLastLayer:
    """Stop the text encoder at an earlier layer ("clip skip")."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "clip": ("CLIP",),
            "stop_at_clip_layer": ("INT", {"default": -1, "min": -24, "max": -1, "step": 1}),
        }}

    RETURN_TYPES = ("CLIP",)
    FUNCTION = "set_last_layer"
    CATEGORY = "conditioning"

    def set_last_layer(self, clip, stop_at_clip_layer):
        clip = clip.clone()
        clip.clip_layer(stop_at_clip_layer)
        return (clip,)


class LoraLoader:
    """Patch MODEL and CLIP with a LoRA file at the given strengths."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MODEL", {"tooltip": "Diffusion model to patch."}),
            "clip": ("CLIP", {"tooltip": "Text encoder to patch."}),
            "lora_name": (folder_paths.get_filename_list("loras"), {"tooltip": "LoRA file from the loras folder."}),
            "strength_model": ("FLOAT", {"default": 1.0, "min": -100.0, "max": 100.0, "step": 0.01,
                                         "tooltip": "Scale of the LoRA's change to the diffusion "
                                                    "model; 0 skips it, negative inverts it."}),
            "strength_clip": ("FLOAT", {"default": 1.0, "min": -100.0, "max": 100.0, "step": 0.01,
                                        "tooltip": "Scale of the LoRA's change to the text "
                                                   "encoder; 0 skips it, negative inverts it."}),
        }}

    RETURN_TYPES = ("MODEL", "CLIP")
    OUTPUT_TOOLTIPS = ("Diffusion model with the LoRA applied.", "Text encoder with the LoRA applied.")
    FUNCTION = "load_lora"
    CATEGORY = "loaders"
    DESCRIPTION = ("Adds a LoRA's weight changes to a diffusion model and its text encoder, e.g. to "
                   "bring in a style or subject. Chain several of these nodes to stack LoRAs.")

    def load_lora(self, model, clip, lora_name, strength_model, strength_clip):
        from opencomfy.diffusion.lora import load_lora_file

        if strength_model == 0 and strength_clip == 0:
            return (model, clip)
        lora = _load_cached("lora", "loras", lora_name, load_lora_file)
        new_model, new_clip = model, clip
        if strength_model != 0 and model is not None:
            new_model = model.clone()
            new_model.patches.append((lora.for_unet(model.unet), strength_model))
        if strength_clip != 0 and clip is not None:
            new_clip = clip.clone()
            new_clip.patches.extend((patch, strength_clip) for patch in lora.for_text_encoder(clip))
        if strength_model != 0 and strength_clip != 0:
            lora.warn_unmatched(lora_name)
        return (new_model, new_clip)


class LoraLoaderModelOnly(LoraLoader):
    """Patch only the MODEL with a LoRA file."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MODEL",),
            "lora_name": (folder_paths.get_filename_list("loras"),),
            "strength_model": ("FLOAT", {"default": 1.0, "min": -100.0, "max": 100.0, "step": 0.01}),
        }}

    RETURN_TYPES = ("MODEL",)
    FUNCTION = "load_lora_model_only"
    OUTPUT_TOOLTIPS = None
    DESCRIPTION = None

    def load_lora_model_only(self, model, lora_name, strength_model):
        return (self.load_lora(model, None, lora_name, strength_model, 0)[0],)


NODES = [
    ("CheckpointLoaderSimple", CheckpointLoaderSimple, "Load Checkpoint", "nodes"),
    ("VAELoader", VAELoader, "Load VAE", "nodes"),
    ("CLIPLoader", CLIPLoader, "Load CLIP", "nodes"),
    ("CLIPSetLastLayer", CLIPSetLastLayer, "CLIP Set Last Layer", "nodes"),
    ("LoraLoader", LoraLoader, "Load LoRA", "nodes"),
    ("LoraLoaderModelOnly", LoraLoaderModelOnly, "LoraLoaderModelOnly", "nodes"),
]


class UNETLoader:
    """A diffusion-model-only file (LDM layout) -> MODEL."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "unet_name": (folder_paths.get_filename_list("diffusion_models"),),
            "weight_dtype": (["default", "fp8_e4m3fn", "fp8_e4m3fn_fast", "fp8_e5m2"],),
        }}

    RETURN_TYPES = ("MODEL",)
    FUNCTION = "load_unet"
    CATEGORY = "advanced/loaders"

    def load_unet(self, unet_name, weight_dtype="default"):
        from opencomfy.diffusion.loading import load_unet_file

        return (_load_cached(f"unet-{weight_dtype}", "diffusion_models", unet_name,
                             lambda path: load_unet_file(path, weight_dtype)),)


class DualCLIPLoader:
    """Two text encoder files -> one CLIP (SDXL: CLIP-L and OpenCLIP-G)."""

    @classmethod
    def INPUT_TYPES(cls):
        names = folder_paths.get_filename_list("text_encoders")
        return {"required": {
            "clip_name1": (names,),
            "clip_name2": (names,),
            "type": (DUAL_CLIP_LOADER_TYPES,),
        }, "optional": {"device": (["default", "cpu"], {"advanced": True})}}

    RETURN_TYPES = ("CLIP",)
    FUNCTION = "load_clip"
    CATEGORY = "advanced/loaders"
    DESCRIPTION = "Loads two text encoder files as one. For type sdxl pick a CLIP-L and a CLIP-G file."

    def load_clip(self, clip_name1, clip_name2, type, device="default"):
        from opencomfy.diffusion import cache
        from opencomfy.diffusion.loading import load_dual_clip_files

        path_1 = folder_paths.get_full_path_or_raise("text_encoders", clip_name1)
        path_2 = folder_paths.get_full_path_or_raise("text_encoders", clip_name2)
        key = ("dual_clip", type, cache.file_key(path_1), cache.file_key(path_2))
        return (cache.get_or_load(key, lambda: load_dual_clip_files(path_1, path_2, type)),)


NODES += [
    ("UNETLoader", UNETLoader, "Load Diffusion Model", "nodes"),
    ("DualCLIPLoader", DualCLIPLoader, "DualCLIPLoader", "nodes"),
]
