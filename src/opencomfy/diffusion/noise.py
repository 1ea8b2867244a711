"""NOISE: where the starting noise of a sampling run comes from.

A NOISE value has ``seed`` and ``generate_noise(latent) -> tensor``, ComfyUI's shape, so custom
nodes can supply their own. The noise is drawn on the CPU so a seed gives the same image on
any device; the seed also seeds the samplers' per-step noise.
"""

from __future__ import annotations

import torch

from opencomfy.diffusion.sampling import prepare_noise


class RandomNoise:
    """Seeded Gaussian noise (the RandomNoise node)."""

    def __init__(self, seed: int):
        self.seed = int(seed)

    def generate_noise(self, input_latent: dict) -> torch.Tensor:
        return prepare_noise(input_latent["samples"], self.seed, input_latent.get("batch_index"))

    def __repr__(self) -> str:
        return f"<NOISE random seed={self.seed}>"


class EmptyNoise:
    """No noise at all (DisableNoise): for continuing from a latent that is already noisy."""

    seed = 0

    def generate_noise(self, input_latent: dict) -> torch.Tensor:
        samples = input_latent["samples"]
        return torch.zeros(samples.shape, dtype=torch.float32, device="cpu")

    def __repr__(self) -> str:
        return "<NOISE disabled>"


# ComfyUI's class names, for custom nodes that build NOISE values themselves.
Noise_RandomNoise = RandomNoise
Noise_EmptyNoise = EmptyNoise


def fix_empty_latent_channels(model, latent_image: torch.Tensor) -> torch.Tensor:
    """An all-zero latent with the wrong channel count (an EmptyLatentImage made for another
    model family) becomes zeros with the model's channels; any other latent is kept."""
    latent_image = latent_image.float()
    channels = model.latent_channels
    if latent_image.shape[1] != channels and latent_image.abs().sum() == 0:
        return torch.zeros(latent_image.shape[0], channels, *latent_image.shape[2:])
    return latent_image
