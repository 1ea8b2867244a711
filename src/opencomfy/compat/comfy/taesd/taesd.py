"""ComfyUI's ``comfy.taesd.taesd``: TAESD, madebyollin's tiny autoencoder (MIT licensed), as
plain torch modules whose parameter names are those of the published ``taesd*_encoder`` /
``taesd*_decoder`` files, so the files load directly.

Packs build previewers and fast decoders from these pieces (``Block``, ``conv``, ``Clamp``,
``Encoder``, ``Decoder``, ``TAESD``).
"""

from __future__ import annotations

import torch
from torch import nn


def conv(n_in: int, n_out: int, **kwargs) -> nn.Conv2d:
    """A 3x3 convolution that keeps the size (stride and bias as given)."""
    return nn.Conv2d(n_in, n_out, 3, padding=1, **kwargs)


class Clamp(nn.Module):
    """A soft clamp to -3..3 (what the decoder applies to its input latents)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x / 3) * 3


class Block(nn.Module):
    """Three 3x3 convolutions with ReLUs, added to a (1x1 projected) skip, then a ReLU."""

    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        self.conv = nn.Sequential(conv(n_in, n_out), nn.ReLU(), conv(n_out, n_out), nn.ReLU(), conv(n_out, n_out))
        self.skip = nn.Conv2d(n_in, n_out, 1, bias=False) if n_in != n_out else nn.Identity()
        self.fuse = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fuse(self.conv(x) + self.skip(x))


def Encoder(latent_channels: int = 4) -> nn.Sequential:
    """Image (0..1) -> latents at 1/8 the size: three stride-2 stages of three blocks."""
    layers: list[nn.Module] = [conv(3, 64), Block(64, 64)]
    for _stage in range(3):
        layers += [conv(64, 64, stride=2, bias=False), Block(64, 64), Block(64, 64), Block(64, 64)]
    layers.append(conv(64, latent_channels))
    return nn.Sequential(*layers)


def Decoder(latent_channels: int = 4) -> nn.Sequential:
    """Latents -> image (0..1) at 8 times the size: three upsampling stages of three blocks."""
    layers: list[nn.Module] = [Clamp(), conv(latent_channels, 64), nn.ReLU()]
    for _stage in range(3):
        layers += [Block(64, 64), Block(64, 64), Block(64, 64), nn.Upsample(scale_factor=2),
                   conv(64, 64, bias=False)]
    layers += [Block(64, 64), conv(64, 3)]
    return nn.Sequential(*layers)


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
        from opencomfy.weights import read_state_dict

        if encoder_path is not None:
            self.taesd_encoder.load_state_dict(read_state_dict(str(encoder_path)), strict=True)
        if decoder_path is not None:
            self.taesd_decoder.load_state_dict(read_state_dict(str(decoder_path)), strict=True)

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
