"""Image generation over diffusers: the optional ``diffusion`` extra.

``pip install opencomfy[diffusion]`` adds diffusers, transformers, safetensors and accelerate;
without them the model nodes are simply absent. Heavy imports happen lazily, inside the
functions that load models, so importing this package is cheap.

Parts: :mod:`detect` (architecture from weights, bundled configs), :mod:`loading`,
:mod:`cache` (models reused across prompts), :mod:`memory` (devices, LRU offload, LoRA
patching), :mod:`text_encoder` and :mod:`prompt_weights` (CLIPTextEncode), :mod:`schedulers`,
:mod:`samplers` and :mod:`sampling` (KSampler), :mod:`models` (MODEL, VAE), :mod:`lora`.
"""

from __future__ import annotations

import importlib.util

REQUIRED_PACKAGES = ("torch", "diffusers", "transformers", "safetensors", "accelerate")


def available() -> bool:
    """Whether the diffusion extra is installed (checked without importing it)."""
    try:
        return all(importlib.util.find_spec(name) is not None for name in REQUIRED_PACKAGES)
    except (ImportError, ValueError):   # e.g. a module blocked with sys.modules[name] = None
        return False


def free_models() -> None:
    """Forget every cached model and move everything off the device (``/api/free``)."""
    from opencomfy.diffusion import cache

    cache.clear()
