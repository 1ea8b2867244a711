"""ComfyUI's custom sampling nodes (``comfy_extras.nodes_custom_sampler`` and friends).

They take sampling apart into values that travel between nodes: SIGMAS (the noise levels),
SAMPLER (the algorithm), NOISE (the starting noise) and GUIDER (model plus conditioning), put
back together by SamplerCustomAdvanced on the same path KSampler uses. Like the other model
nodes, ``NODES`` is empty without the optional diffusion extra.
"""

from __future__ import annotations

from opencomfy.diffusion import available

NODES: list = []

if available():
    from opencomfy.nodes import custom_sampling_guiders, custom_sampling_samplers, custom_sampling_sigmas

    NODES = [
        *custom_sampling_guiders.NODES,
        *custom_sampling_samplers.NODES,
        *custom_sampling_sigmas.NODES,
    ]
