"""Placeholders for ComfyUI's diffusion-model modules (``comfy.sd``, ``comfy.sample``, ...).

Many packs import them at the top of their ``__init__`` although only some of their nodes
use a model. opencomfy's core has no diffusion model code, so these modules are made of
placeholders: importing and naming anything works (``from comfy.sd import VAE``,
``isinstance(x, comfy.model_patcher.ModelPatcher)``, subclassing), and *using* one (calling
it, instantiating it) raises :class:`ModelBackendUnavailable`, which fails only the node that
needed the model, with a message that says why.
"""

from __future__ import annotations

import types

# ComfyUI modules that hold model code; submodules of these are placeholders too.
PLACEHOLDER_MODULES: tuple[str, ...] = (
    "comfy.sd", "comfy.sd1_clip", "comfy.sdxl_clip", "comfy.sample", "comfy.model_patcher",
    "comfy.model_base", "comfy.model_detection", "comfy.model_sampling", "comfy.controlnet",
    "comfy.clip_vision", "comfy.clip_model", "comfy.latent_formats", "comfy.lora",
    "comfy.lora_convert", "comfy.hooks", "comfy.ops", "comfy.supported_models",
    "comfy.supported_models_base", "comfy.patcher_extension", "comfy.sampler_helpers",
    "comfy.diffusers_load", "comfy.gligen", "comfy.conds", "comfy.float", "comfy.rmsnorm",
    "comfy.k_diffusion", "comfy.ldm", "comfy.text_encoders", "comfy.taesd", "comfy.weight_adapter",
    "comfy.image_encoders", "comfy.audio_encoders", "comfy.cldm", "comfy.t2i_adapter",
    "comfy.extra_samplers",
)


class ModelBackendUnavailable(NotImplementedError):
    """A node used ComfyUI's diffusion-model code, which opencomfy does not include."""


def is_placeholder_name(fullname: str) -> bool:
    return any(fullname == name or fullname.startswith(name + ".") for name in PLACEHOLDER_MODULES)


def _unavailable(qualified: str) -> ModelBackendUnavailable:
    return ModelBackendUnavailable(
        f"{qualified} needs ComfyUI's diffusion model code, which opencomfy does not include")


class _PlaceholderMeta(type):
    """Placeholder classes: any attribute is another placeholder; calling one raises."""

    def __getattr__(cls, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return placeholder(f"{cls.__qualified__}.{name}")

    def __call__(cls, *args, **kwargs):
        raise _unavailable(cls.__qualified__)


def placeholder(qualified: str) -> type:
    """A stand-in for ``qualified`` (``comfy.sd.VAE``, ``comfy.sample.prepare_noise`` ...)."""
    module, _, name = qualified.rpartition(".")
    return _PlaceholderMeta(name, (), {"__qualified__": qualified, "__module__": module})


class PlaceholderModule(types.ModuleType):
    """A module whose every public attribute is a placeholder (and kept once made)."""

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        value = placeholder(f"{self.__name__}.{name}")
        setattr(self, name, value)
        return value


def make_module(fullname: str) -> PlaceholderModule:
    module = PlaceholderModule(fullname, f"Placeholder for ComfyUI's {fullname} (no model code).")
    module.__path__ = []  # a package, so that `comfy.ldm.modules.attention` imports too
    return module
