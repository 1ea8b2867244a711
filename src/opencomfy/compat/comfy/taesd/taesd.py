"""ComfyUI's ``comfy.taesd.taesd``: TAESD, madebyollin's tiny autoencoder (MIT licensed), as
plain torch modules whose parameter names are those of the published ``taesd*_encoder`` /
``taesd*_decoder`` files, so the files load directly.

Packs build previewers and fast decoders from these pieces (``Block``, ``conv``, ``Clamp``,
``Encoder``, ``Decoder``, ``TAESD``). The networks, their file layout and the file reading are
:mod:`opencomfy.diffusion.taesd`'s, the same the server's previews and VAELoader use.
"""

from __future__ import annotations

import torch
from torch import nn

from opencomfy.diffusion import taesd as _taesd
from opencomfy.diffusion.taesd import Clamp

# Block comes from __getattr__ below.
__all__ = ["Clamp", "Decoder", "Encoder", "TAESD", "conv"]


def conv(n_in: int, n_out: int, **kwargs) -> nn.Conv2d:
    """A 3x3 convolution that keeps the size (stride and bias as given)."""
    return nn.Conv2d(n_in, n_out, 3, padding=1, **kwargs)


def _block_class() -> type[nn.Module]:
    from diffusers.models.unets.unet_2d_blocks import AutoencoderTinyBlock

    class Block(AutoencoderTinyBlock):
        """Three 3x3 convolutions with ReLUs, added to a (1x1 projected) skip, then a ReLU."""

        def __init__(self, n_in: int, n_out: int):
            super().__init__(n_in, n_out, "relu")

    Block.__module__ = __name__
    return Block


def __getattr__(name: str):
    # ``Block`` is diffusers' tiny-autoencoder block, made on first use: diffusers is the model
    # extra, and ``latent_preview`` (which imports this module) must load without it.
    if name == "Block":
        block = globals()["Block"] = _block_class()
        return block
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def Encoder(latent_channels: int = 4) -> nn.Sequential:
    """Image (0..1) -> latents at 1/8 the size: three stride-2 stages of three blocks."""
    return _taesd.sequential_encoder(latent_channels)


def Decoder(latent_channels: int = 4) -> nn.Sequential:
    """Latents -> image (0..1) at 8 times the size: three upsampling stages of three blocks."""
    return _taesd.sequential_decoder(latent_channels)


class TAESD(nn.Module):
    """Encoder and decoder, each loaded from its file when given. ``decode`` maps model latents
    (after ``vae_shift`` / ``vae_scale``) to images in -1..1, ``encode`` the way back."""

    latent_magnitude = 3
    latent_shift = 0.5

    def __init__(self, encoder_path=None, decoder_path=None, latent_channels: int = 4):
        super().__init__()
        self.taesd_encoder = Encoder(latent_channels)
        self.taesd_decoder = Decoder(latent_channels)
        self.vae_scale = nn.Parameter(torch.tensor(1.0))
        self.vae_shift = nn.Parameter(torch.tensor(0.0))
        if encoder_path is not None:
            self.taesd_encoder.load_state_dict(_taesd.read_part(encoder_path, "encoder"), strict=True)
        if decoder_path is not None:
            self.taesd_decoder.load_state_dict(_taesd.read_part(decoder_path, "decoder"), strict=True)

    @staticmethod
    def scale_latents(x: torch.Tensor) -> torch.Tensor:
        """Raw latents -> 0..1 (for storing them as images)."""
        return x.div(2 * TAESD.latent_magnitude).add(TAESD.latent_shift).clamp(0, 1)

    @staticmethod
    def unscale_latents(x: torch.Tensor) -> torch.Tensor:
        return x.sub(TAESD.latent_shift).mul(2 * TAESD.latent_magnitude)

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        return self.taesd_decoder((x - self.vae_shift) * self.vae_scale).sub(0.5).mul(2)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.taesd_encoder(x * 0.5 + 0.5) / self.vae_scale + self.vae_shift
