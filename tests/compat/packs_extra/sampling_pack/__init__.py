"""A pack that samples and loads models through ComfyUI's module surface, the ways popular
packs do: its own KSampler over ``comfy.sample.sample``, one over ``comfy.samplers.KSampler``,
``nodes.common_ksampler``, a CFG patch that calls ``comfy.samplers.sampling_function``, a guider
subclass, a k-diffusion sampler function wrapped in ``comfy.samplers.KSAMPLER``, and a loader
over ``comfy.sd.load_checkpoint_guess_config`` and ``load_lora_for_models``."""

import comfy.k_diffusion.sampling
import comfy.sample
import comfy.samplers
import comfy.sd
import comfy.utils
import folder_paths
import latent_preview
import nodes
import torch

SAMPLING = {
    "model": ("MODEL",),
    "seed": ("INT", {"default": 0, "min": 0, "max": 0xffffffffffffffff}),
    "steps": ("INT", {"default": 3, "min": 1, "max": 100}),
    "cfg": ("FLOAT", {"default": 6.0, "min": 0.0, "max": 100.0}),
    "sampler_name": (comfy.samplers.KSampler.SAMPLERS,),
    "scheduler": (comfy.samplers.KSampler.SCHEDULERS,),
    "positive": ("CONDITIONING",),
    "negative": ("CONDITIONING",),
    "latent_image": ("LATENT",),
    "denoise": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0}),
}


class PackSample:
    """Prepares the noise and samples with comfy.sample.sample, as many custom KSamplers do."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": dict(SAMPLING)}

    RETURN_TYPES = ("LATENT",)
    FUNCTION = "run"
    CATEGORY = "sampling_pack"

    def run(self, model, seed, steps, cfg, sampler_name, scheduler, positive, negative, latent_image, denoise):
        latent = comfy.sample.fix_empty_latent_channels(model, latent_image["samples"])
        noise = comfy.sample.prepare_noise(latent, seed, latent_image.get("batch_index"))
        callback = latent_preview.prepare_callback(model, steps)
        samples = comfy.sample.sample(model, noise, steps, cfg, sampler_name, scheduler, positive, negative,
                                      latent, denoise=denoise, noise_mask=latent_image.get("noise_mask"),
                                      callback=callback, disable_pbar=not comfy.utils.PROGRESS_BAR_ENABLED,
                                      seed=seed)
        out = latent_image.copy()
        out["samples"] = samples
        return (out,)


class PackKSamplerObject:
    """Builds comfy.samplers.KSampler and calls its sample()."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": dict(SAMPLING)}

    RETURN_TYPES = ("LATENT", "STRING")
    FUNCTION = "run"
    CATEGORY = "sampling_pack"

    def run(self, model, seed, steps, cfg, sampler_name, scheduler, positive, negative, latent_image, denoise):
        sampler = comfy.samplers.KSampler(model, steps=steps, device=model.load_device, sampler=sampler_name,
                                          scheduler=scheduler, denoise=denoise, model_options=model.model_options)
        latent = latent_image["samples"]
        noise = comfy.sample.prepare_noise(latent, seed)
        samples = sampler.sample(noise, positive, negative, cfg=cfg, latent_image=latent, seed=seed)
        sigmas = ", ".join(f"{float(s):.4f}" for s in sampler.sigmas)
        return ({"samples": samples}, sigmas)


class PackCommonKSampler:
    """nodes.common_ksampler, which returns a 1-tuple."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": dict(SAMPLING)}

    RETURN_TYPES = ("LATENT",)
    FUNCTION = "run"
    CATEGORY = "sampling_pack"

    def run(self, model, seed, steps, cfg, sampler_name, scheduler, positive, negative, latent_image, denoise):
        return nodes.common_ksampler(model, seed, steps, cfg, sampler_name, scheduler, positive, negative,
                                     latent_image, denoise=denoise)


class PackRecomputeCFG:
    """A sampler_cfg_function that recomputes the guided prediction with
    comfy.samplers.sampling_function (with its own options), scaled by ``factor``."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",), "factor": ("FLOAT", {"default": 1.0})}}

    RETURN_TYPES = ("MODEL",)
    FUNCTION = "patch"
    CATEGORY = "sampling_pack"

    def patch(self, model, factor):
        def cfg_function(args):
            options = dict(args["model_options"])
            options.pop("sampler_cfg_function", None)
            x = args["input"]
            denoised = comfy.samplers.sampling_function(args["model"], x, args["timestep"], args["input_uncond"],
                                                        args["input_cond"], args["cond_scale"] * factor, options)
            return x - denoised

        patched = model.clone()
        patched.set_model_sampler_cfg_function(cfg_function)
        return (patched,)


class PackGuider(comfy.samplers.CFGGuider):
    """A guider subclass whose predict_noise calls comfy.samplers.sampling_function itself."""

    def predict_noise(self, x, timestep, model_options={}, seed=None):  # noqa: B006 (ComfyUI's signature)
        return comfy.samplers.sampling_function(self.inner_model, x, timestep, self.conds.get("negative", None),
                                                self.conds.get("positive", None), self.cfg,
                                                model_options=model_options, seed=seed)


class PackGuiderNode:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",), "positive": ("CONDITIONING",), "negative": ("CONDITIONING",),
                             "cfg": ("FLOAT", {"default": 6.0})}}

    RETURN_TYPES = ("GUIDER",)
    FUNCTION = "get_guider"
    CATEGORY = "sampling_pack"

    def get_guider(self, model, positive, negative, cfg):
        guider = PackGuider(model)
        guider.set_conds(positive, negative)
        guider.set_cfg(cfg)
        return (guider,)


def pack_euler(model, x, sigmas, extra_args=None, callback=None, disable=None):
    """A k-diffusion sampler function of the pack's own: Euler through ComfyUI's helpers."""
    extra_args = {} if extra_args is None else extra_args
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        if callback is not None:
            callback({"x": x, "i": i, "sigma": sigmas[i], "sigma_hat": sigmas[i], "denoised": denoised})
        d = comfy.k_diffusion.sampling.to_d(x, sigmas[i], denoised)
        x = x + d * (sigmas[i + 1] - sigmas[i])
    return x


comfy.k_diffusion.sampling.sample_pack_euler = pack_euler  # registered by name, as packs do
if "pack_euler" not in comfy.samplers.KSAMPLER_NAMES:
    comfy.samplers.KSAMPLER_NAMES.append("pack_euler")


class PackSamplerSelect:
    """SAMPLERs: the pack's function by name (ksampler), or wrapped directly in KSAMPLER."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"how": (["by_name", "wrapped"],)}}

    RETURN_TYPES = ("SAMPLER",)
    FUNCTION = "get_sampler"
    CATEGORY = "sampling_pack"

    def get_sampler(self, how):
        if how == "by_name":
            return (comfy.samplers.ksampler("pack_euler"),)
        return (comfy.samplers.KSAMPLER(pack_euler),)


class PackLoader:
    """Checkpoint and LoRA through comfy.sd, as packs with their own loaders do."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"ckpt_name": (folder_paths.get_filename_list("checkpoints"),),
                             "lora_name": (folder_paths.get_filename_list("loras"),),
                             "strength": ("FLOAT", {"default": 1.0, "min": -10.0, "max": 10.0})}}

    RETURN_TYPES = ("MODEL", "CLIP", "VAE", "STRING")
    FUNCTION = "load"
    CATEGORY = "sampling_pack"

    def load(self, ckpt_name, lora_name, strength):
        path = folder_paths.get_full_path_or_raise("checkpoints", ckpt_name)
        model, clip, vae, clipvision = comfy.sd.load_checkpoint_guess_config(
            path, output_vae=True, output_clip=True, embedding_directory=folder_paths.get_folder_paths("embeddings"))
        lora = comfy.utils.load_torch_file(folder_paths.get_full_path_or_raise("loras", lora_name), safe_load=True)
        model, clip = comfy.sd.load_lora_for_models(model, clip, lora, strength, strength)
        kinds = f"{isinstance(vae, comfy.sd.VAE)} {isinstance(clip, comfy.sd.CLIP)} {clipvision}"
        return (model, clip, vae, kinds)


class PackLatentDifference:
    """The largest absolute difference between two LATENTs, as text."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"a": ("LATENT",), "b": ("LATENT",)}}

    RETURN_TYPES = ("STRING",)
    FUNCTION = "diff"
    CATEGORY = "sampling_pack"

    def diff(self, a, b):
        return (f"{float(torch.max(torch.abs(a['samples'] - b['samples']))):.6g}",)


NODE_CLASS_MAPPINGS = {
    "PackSample": PackSample,
    "PackKSamplerObject": PackKSamplerObject,
    "PackCommonKSampler": PackCommonKSampler,
    "PackRecomputeCFG": PackRecomputeCFG,
    "PackGuider": PackGuiderNode,
    "PackSamplerSelect": PackSamplerSelect,
    "PackLoader": PackLoader,
    "PackLatentDifference": PackLatentDifference,
}
