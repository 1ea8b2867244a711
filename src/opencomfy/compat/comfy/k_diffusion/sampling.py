"""ComfyUI's ``comfy.k_diffusion.sampling``: every ``sample_<name>`` with k-diffusion's
signature, the sigma schedules, ``to_d``, the ancestral step and the noise samplers, all
served by :mod:`opencomfy.diffusion.k_sampling` (which runs our samplers).

A pack may add ``sample_<name>`` here (and the name to ``comfy.samplers.KSAMPLER_NAMES``) or
replace one of ours: ``comfy.samplers.ksampler`` / ``sampler_object`` then run its function,
as ComfyUI looks the function up here by name. The core KSampler node keeps ours.
"""

import torch  # noqa: F401  (packs read `comfy.k_diffusion.sampling.torch`)

from opencomfy.diffusion import k_sampling as _ours
from opencomfy.diffusion.k_sampling import *  # noqa: F403
from opencomfy.diffusion.k_sampling import __all__  # noqa: F401

# name -> our function, to tell a pack's replacement from ours.
_OWN = {name: getattr(_ours, name) for name in _ours.__all__ if name.startswith("sample_")}


def replaced_by_pack(sampler_name: str):
    """The pack's ``sample_<sampler_name>`` if a pack added or replaced it here, else None."""
    fn = globals().get(f"sample_{sampler_name}")
    if fn is None or _OWN.get(f"sample_{sampler_name}") is fn:
        return None
    return fn
