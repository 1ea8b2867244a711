"""The VAEs VAELoader offers besides real VAE files: the TAESD approximations and pixel space.

``taesd``, ``taesdxl``, ``taesd3`` and ``taef1`` are tiny autoencoders (madebyollin's TAESD)
stored as an encoder and a decoder file in ``models/vae_approx``; :mod:`opencomfy.diffusion.taesd`
finds and builds them (diffusers' ``AutoencoderTiny``). They work on latents already multiplied
by the family's scale (and shifted, for SD3 and Flux), so they divide that back out: a LATENT's
``samples`` stay raw VAE latents. ``pixel_space`` is the identity "VAE" of models that denoise
pixels directly.
"""

from __future__ import annotations

import torch

from opencomfy.diffusion import taesd
from opencomfy.diffusion.memory import models_in_use
from opencomfy.diffusion.model_and_vae import VAE
from opencomfy.diffusion.taesd import TAESD_LATENT_FORMATS, approximations_present

__all__ = ["PIXEL_SPACE", "TAESD_LATENT_FORMATS", "PixelSpaceVAE", "TinyVAE", "approximations_present",
           "load_taesd"]

PIXEL_SPACE = "pixel_space"


class PixelSpaceVAE(VAE):
    """Pixels in, pixels out: a "latent" is the image in -1..1, channels first."""

    downscale_ratio = 1

    def __init__(self):
        super().__init__(autoencoder=None)

    def modules(self):
        return []

    @property
    def latent_channels(self) -> int:
        return 3

    def decode(self, samples: torch.Tensor) -> torch.Tensor:
        return ((samples.float() + 1.0) / 2.0).clamp(0, 1).movedim(1, -1).cpu()

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        return pixels[..., :3].float().movedim(-1, 1) * 2.0 - 1.0

    def decode_tiled(self, samples: torch.Tensor, **_tiling) -> torch.Tensor:
        return self.decode(samples)      # every pixel is independent: tiles change nothing

    def encode_tiled(self, pixels: torch.Tensor, **_tiling) -> torch.Tensor:
        return self.encode(pixels)

    def __repr__(self) -> str:
        return "<VAE pixel_space>"


class TinyVAE(VAE):
    """A TAESD approximation as a VAE (diffusers ``AutoencoderTiny``)."""

    def __init__(self, *, autoencoder, scale: float, shift: float, name: str):
        super().__init__(autoencoder=autoencoder)
        self.scale, self.shift, self.name = scale, shift, name

    def decode(self, samples: torch.Tensor) -> torch.Tensor:
        with models_in_use(self) as device:
            dtype = next(self.autoencoder.parameters()).dtype
            scaled = ((samples - self.shift) * self.scale).to(device, dtype)
            out = self.autoencoder.decode(scaled, return_dict=False)[0]
        return ((out.float() + 1.0) / 2.0).clamp(0, 1).permute(0, 2, 3, 1).cpu()

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        pixels = self._crop_to_multiple(pixels[..., :3])
        with models_in_use(self) as device:
            dtype = next(self.autoencoder.parameters()).dtype
            x = pixels.permute(0, 3, 1, 2).to(device, dtype) * 2.0 - 1.0
            latent = self.autoencoder.encode(x, return_dict=False)[0]
        return (latent.float() / self.scale + self.shift).cpu()

    def __repr__(self) -> str:
        return f"<VAE {self.name}>"


def load_taesd(name: str, encoder_path: str, decoder_path: str) -> TinyVAE:
    """The ``name`` approximation (a key of :data:`TAESD_LATENT_FORMATS`) from its two files."""
    autoencoder = taesd.build_autoencoder(taesd.read_part(encoder_path, "encoder"),
                                          taesd.read_part(decoder_path, "decoder"))
    scale, shift = TAESD_LATENT_FORMATS[name]
    return TinyVAE(autoencoder=autoencoder, scale=scale, shift=shift, name=name)
