"""The model nodes (loaders, text encoding, sampling, VAE) of the optional ``diffusion`` extra.

When diffusers, transformers, safetensors or accelerate are not installed, ``NODES`` is empty
and the server simply has no model nodes. The node modules import the heavy libraries only
when a node runs, so registering them costs nothing at start-up.
"""

from __future__ import annotations

from opencomfy.diffusion import available

NODES: list = []

if available():
    from opencomfy.nodes import (diffusion_conditioning, diffusion_controlnet, diffusion_loaders,
                                 diffusion_model_advanced, diffusion_sampling, diffusion_vae)

    NODES = [
        *diffusion_loaders.NODES,
        *diffusion_conditioning.NODES,
        *diffusion_sampling.NODES,
        *diffusion_vae.NODES,
        *diffusion_model_advanced.NODES,
        *diffusion_controlnet.NODES,
    ]
