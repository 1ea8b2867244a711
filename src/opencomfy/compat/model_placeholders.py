"""Placeholders for ComfyUI's model-architecture modules (``comfy.ldm.*``, ``comfy.sd``, ...).

Many packs import them at the top of their ``__init__`` although only some of their nodes
use them. Where opencomfy has no counterpart, these modules are made of placeholders that
behave like the real names until used: importing, naming, subclassing, ``isinstance``,
reading a constant and iterating a data attribute all work; *calling* one (a function, a
constructor) raises :class:`ModelBackendUnavailable`, which fails only the node that needed
it, with a message naming the missing symbol.

Data that packs read at import time is real data (:data:`KNOWN_VALUES`):
``comfy.k_diffusion.utils.FolderOfImages.IMG_EXTENSIONS`` is a set of extensions and
``comfy.model_base.ModelType`` an enum with ComfyUI's members.
"""

from __future__ import annotations

import enum
import types
from typing import Any

# ComfyUI modules that hold model code; submodules of these are placeholders too. A module
# opencomfy implements (``opencomfy.compat.comfy.<name>``) is found first and wins.
PLACEHOLDER_MODULES: tuple[str, ...] = (
    "comfy.sd", "comfy.sd1_clip", "comfy.sdxl_clip", "comfy.sample",
    "comfy.model_base", "comfy.model_detection", "comfy.controlnet",
    "comfy.clip_vision", "comfy.clip_model", "comfy.lora_convert", "comfy.hooks",
    "comfy.supported_models", "comfy.supported_models_base", "comfy.patcher_extension",
    "comfy.sampler_helpers", "comfy.diffusers_load", "comfy.gligen", "comfy.conds", "comfy.float",
    "comfy.rmsnorm", "comfy.k_diffusion", "comfy.ldm", "comfy.text_encoders", "comfy.taesd",
    "comfy.weight_adapter", "comfy.image_encoders", "comfy.audio_encoders", "comfy.cldm",
    "comfy.t2i_adapter", "comfy.extra_samplers", "comfy.context_windows", "comfy.nested_tensor",
    "comfy.quant_ops", "comfy.memory_management", "comfy.pixel_space_convert",
)


class ModelBackendUnavailable(NotImplementedError):
    """A node used a part of ComfyUI's model code that opencomfy does not include."""


class ModelType(enum.Enum):
    """ComfyUI's ``comfy.model_base.ModelType``: what a model's output predicts."""

    EPS = 1
    V_PREDICTION = 2
    V_PREDICTION_EDM = 3
    STABLE_CASCADE = 4
    EDM = 5
    FLOW = 6
    V_PREDICTION_CONTINUOUS = 7
    FLUX = 8
    IMG_TO_IMG = 9
    FLOW_COSMOS = 10


# qualified name -> the real value packs read at import time.
KNOWN_VALUES: dict[str, Any] = {
    "comfy.k_diffusion.utils.FolderOfImages.IMG_EXTENSIONS": {
        ".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp"},
    "comfy.model_base.ModelType": ModelType,
}


def is_placeholder_name(fullname: str) -> bool:
    """Whether ``fullname`` is served as a placeholder module: under a placeholder root, and
    not a known value or inside one (``import comfy.model_base.ModelType`` must fail as in
    ComfyUI: made into a module, it would replace the real enum on its parent for good)."""
    if any(fullname == known or fullname.startswith(known + ".") for known in KNOWN_VALUES):
        return False
    return any(fullname == name or fullname.startswith(name + ".") for name in PLACEHOLDER_MODULES)


def is_placeholder(obj: Any) -> bool:
    """Whether ``obj`` is a placeholder (a module or a stand-in, not a pack's subclass of one)."""
    if isinstance(obj, PlaceholderModule):
        return True
    return isinstance(obj, _PlaceholderMeta) and "__qualified__" in obj.__dict__


def _unavailable(qualified: str, reason: str | None) -> ModelBackendUnavailable:
    if reason is None:
        return ModelBackendUnavailable(
            f"{qualified} needs ComfyUI's diffusion model code, which opencomfy does not include")
    return ModelBackendUnavailable(f"{qualified} is not available: {reason}")


def _qualified(cls) -> str:
    return str(cls.__dict__.get("__qualified__") or getattr(cls, "__qualified__", cls.__name__))


def _reason(cls) -> str | None:
    reason = getattr(cls, "__placeholder_reason__", None)
    return reason if isinstance(reason, str) else None


class _PlaceholderMeta(type):
    """Placeholder classes: any attribute is another placeholder; calling one raises.

    A pack's subclass of a placeholder is an ordinary class: attributes it does not define
    raise AttributeError (so ``getattr(cls, "OUTPUT_NODE", False)`` keeps its default), and
    instantiating it raises, since its base cannot be built.
    """

    def __getattr__(cls, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        if "__qualified__" not in cls.__dict__:
            raise AttributeError(f"{cls.__name__!r} has no attribute {name!r} "
                                 f"(its base {cls.__qualified__} is a placeholder)")
        qualified = f"{_qualified(cls)}.{name}"
        value = KNOWN_VALUES.get(qualified, None)
        if value is None:
            value = placeholder(qualified, _reason(cls))
        type.__setattr__(cls, name, value)  # the same object on every read (== works)
        return value

    def __call__(cls, *args, **kwargs):
        raise _unavailable(_qualified(cls), _reason(cls))

    def __iter__(cls):
        # A data attribute ComfyUI has but we do not know: packs iterate it at import time
        # (registering every member of a list); an empty one lets the import go on.
        return iter(())

    def __contains__(cls, item) -> bool:
        return False

    def __repr__(cls) -> str:
        return f"<placeholder {cls.__qualified__}>"


def placeholder(qualified: str, reason: str | None = None) -> type:
    """A stand-in for ``qualified`` (``comfy.sd.VAE``, ``comfy.sample.prepare_noise`` ...).

    ``reason`` replaces the default explanation in the error raised when it is used.
    """
    module, _, name = qualified.rpartition(".")
    return _PlaceholderMeta(name, (), {"__qualified__": qualified, "__module__": module,
                                       "__placeholder_reason__": reason})


class PlaceholderModule(types.ModuleType):
    """A module whose every public attribute is a placeholder (and kept once made)."""

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        qualified = f"{self.__name__}.{name}"
        value = KNOWN_VALUES.get(qualified)
        if value is None:
            value = placeholder(qualified)
        setattr(self, name, value)
        return value


def make_module(fullname: str) -> PlaceholderModule:
    module = PlaceholderModule(fullname, f"Placeholder for ComfyUI's {fullname} (no model code).")
    module.__path__ = []  # a package, so that `comfy.ldm.modules.attention` imports too
    return module


def module_getattr(module_name: str, names: frozenset[str] | set[str], reason: str | None = None):
    """A module ``__getattr__`` that answers ComfyUI's ``names`` of a real module of ours
    with placeholders (the parts of it we do not implement yet), and nothing else."""
    made: dict[str, type] = {}

    def __getattr__(name: str):
        if name not in names:
            raise AttributeError(f"module {module_name!r} has no attribute {name!r}")
        if name not in made:
            made[name] = placeholder(f"{module_name}.{name}", reason)
        return made[name]

    return __getattr__
