"""ComfyUI's ``comfy_extras.nodes_custom_sampler``: the custom sampling node classes, and the
NOISE and GUIDER classes custom nodes build their own on (``Noise_RandomNoise``,
``Noise_EmptyNoise``, ``Guider_Basic``, ``Guider_DualCFG``). Needs the diffusion extra."""

from __future__ import annotations

from opencomfy.diffusion.guiders import BasicGuider as Guider_Basic
from opencomfy.diffusion.guiders import DualCFGGuider as Guider_DualCFG
from opencomfy.diffusion.noise import Noise_EmptyNoise, Noise_RandomNoise
from opencomfy.nodes.custom_sampling import NODES as _NODES

_MODULE = "comfy_extras.nodes_custom_sampler"

NODE_CLASS_MAPPINGS = {name: cls for name, cls, _display, module in _NODES if module == _MODULE}
NODE_DISPLAY_NAME_MAPPINGS = {name: display for name, _cls, display, module in _NODES
                              if module == _MODULE and display}
globals().update(NODE_CLASS_MAPPINGS)


__all__ = ["Guider_Basic", "Guider_DualCFG", "Noise_EmptyNoise", "Noise_RandomNoise",
           "NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
