"""ComfyUI's ``comfy.controlnet``: loading a ControlNet and attaching it to conditioning the
way custom nodes do it themselves::

    c_net = control_net.copy().set_cond_hint(image.movedim(-1, 1), strength, (start, end))
    c_net.set_previous_controlnet(previous)     # a chain, one per conditioning entry
    options["control"] = c_net

Our conditioning holds a sequence of applications (:class:`ControlApply`, what the core
ControlNetApply nodes attach); a :class:`ControlBase` iterates as the applications of its whole
chain, so a conditioning a pack built this way samples like one the core nodes built. The
ControlNets the core loader outputs are instances of :class:`ControlNet` too.
"""

from __future__ import annotations

import copy as _copy
from typing import Any, cast

import torch

from opencomfy.compat.model_placeholders import module_getattr
from opencomfy.diffusion.controlnet import ControlApply
from opencomfy.diffusion.controlnet import ControlNet as _OurControlNet

__all__ = ["ControlBase", "ControlNet", "load_controlnet", "StrengthType"]


class StrengthType:
    """How a ControlNet's strength is applied (ComfyUI's enum; ours is constant)."""

    CONSTANT = 1
    LINEAR_UP = 2


class ControlBase:
    """A ControlNet with its hint image, strength, active range and the ControlNet applied
    before it (``previous_controlnet``)."""

    def __init__(self):
        self.cond_hint_original: torch.Tensor | None = None
        self.strength = 1.0
        self.timestep_percent_range = (0.0, 1.0)
        self.previous_controlnet: ControlBase | None = None
        self.extra_args: dict = {}
        self.strength_type = StrengthType.CONSTANT

    def set_cond_hint(self, cond_hint, strength=1.0, timestep_percent_range=(0.0, 1.0), vae=None,
                      extra_concat=None):
        """The hint as ComfyUI passes it (``[B, C, H, W]`` pixels in 0..1); returns self."""
        self.cond_hint_original = cond_hint
        self.strength = float(strength)
        self.timestep_percent_range = (float(timestep_percent_range[0]), float(timestep_percent_range[1]))
        return self

    def set_previous_controlnet(self, controlnet):
        self.previous_controlnet = controlnet
        return self

    def set_extra_arg(self, argument, value=None) -> None:
        self.extra_args[argument] = value

    def copy_to(self, c: "ControlBase") -> None:
        c.cond_hint_original = self.cond_hint_original
        c.strength = self.strength
        c.timestep_percent_range = self.timestep_percent_range
        c.extra_args = dict(self.extra_args)
        c.strength_type = self.strength_type

    def copy(self) -> "ControlBase":
        out = _copy.copy(self)
        out.previous_controlnet = None
        self.copy_to(out)
        return out

    def get_models(self) -> list:
        return self.previous_controlnet.get_models() if self.previous_controlnet is not None else []

    def get_models_only_self(self) -> list:
        return []

    def inference_memory_requirements(self, dtype) -> int:
        return 0

    def cleanup(self) -> None:
        if self.previous_controlnet is not None:
            self.previous_controlnet.cleanup()

    def pre_run(self, model, percent_to_timestep_function) -> None:
        if self.previous_controlnet is not None:
            self.previous_controlnet.pre_run(model, percent_to_timestep_function)

    def applications(self) -> list[ControlApply]:
        """What this chain adds to a conditioning entry, the earliest ControlNet first."""
        earlier = list(self.previous_controlnet) if self.previous_controlnet is not None else []
        return earlier + self._own_applications()

    def _own_applications(self) -> list[ControlApply]:
        return []

    def __iter__(self):
        return iter(self.applications())


class _IncludesOurs(type):
    """Every CONTROL_NET of ours (the core loader's too) is a ``comfy.controlnet.ControlNet``."""

    def __instancecheck__(cls, obj) -> bool:
        if "_accepts_ours" in cls.__dict__ and isinstance(obj, _OurControlNet):
            return True
        return super().__instancecheck__(obj)


class ControlNet(ControlBase, metaclass=_IncludesOurs):
    """A loaded ControlNet (``control_model``: ours, as the ControlNetLoader node outputs it).

    Usable as a CONTROL_NET by the core nodes too (``model``, ``family``, ``modules()``)."""

    _accepts_ours = True

    def __init__(self, control_model=None, **_comfy_options):
        super().__init__()
        if not isinstance(control_model, _OurControlNet):
            raise TypeError("comfy.controlnet.ControlNet wraps a loaded ControlNet "
                            "(comfy.controlnet.load_controlnet)")
        self.control_model = control_model

    # What the core sampling path reads of a CONTROL_NET.
    @property
    def model(self):
        return self.control_model.model

    @property
    def family(self) -> str:
        return self.control_model.family

    patches = ()

    def modules(self):
        return self.control_model.modules()

    def get_models(self) -> list:
        return [*super().get_models(), self.control_model]

    def get_models_only_self(self) -> list:
        return [self.control_model]

    def _own_applications(self) -> list[ControlApply]:
        if self.cond_hint_original is None:
            return []
        hint = self.cond_hint_original
        if hint.ndim == 4 and hint.shape[1] in (1, 3, 4) and hint.shape[-1] not in (1, 3, 4):
            hint = hint.movedim(1, -1)  # ComfyUI's [B, C, H, W] -> our IMAGE layout
        start, end = self.timestep_percent_range
        # The sampling path reads only what this wrapper shares with ours (model, modules()).
        return [ControlApply(cast(Any, self), hint, self.strength, start, end)]

    def __repr__(self) -> str:
        return f"<CONTROL_NET {self.family} strength={self.strength}>"


def load_controlnet(ckpt_path, model=None, model_options=None) -> ControlNet:
    """A ControlNet from an LDM-layout file (SD 1.x / 2.x / SDXL), cached like the loader node's."""
    import os

    from opencomfy.diffusion import cache
    from opencomfy.diffusion.controlnet import load_controlnet_file

    path = os.fspath(ckpt_path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"ControlNet file not found: {path}")
    loaded = cache.get_or_load(cache.file_key(path, "controlnet"), lambda: load_controlnet_file(path))
    return ControlNet(loaded)


_PENDING = frozenset({"T2IAdapter", "ControlLora", "ControlLoraOps", "load_t2i_adapter",
                      "load_controlnet_state_dict", "controlnet_config", "controlnet_load_state_dict",
                      "load_controlnet_mmdit", "load_controlnet_hunyuandit", "load_controlnet_flux_xlabs_mistoline",
                      "load_controlnet_flux_instantx", "load_controlnet_qwen_instantx", "broadcast_image_to"})
__getattr__ = module_getattr("comfy.controlnet", _PENDING,
                             "opencomfy loads LDM-layout ControlNets only (comfy.controlnet.load_controlnet)")
