"""The VAEs VAELoader offers besides real VAE files: the TAESD approximations and pixel space.

``taesd``, ``taesdxl``, ``taesd3`` and ``taef1`` are tiny autoencoders (madebyollin's TAESD)
stored as an encoder and a decoder file in ``models/vae_approx``; they run as diffusers'
``AutoencoderTiny``. They work on latents already multiplied by the family's scale (and shifted,
for SD3 and Flux), so they divide that back out: a LATENT's ``samples`` stay raw VAE latents.
``pixel_space`` is the identity "VAE" of models that denoise pixels directly.
"""

from __future__ import annotations

import torch

from opencomfy.diffusion.memory import models_in_use
from opencomfy.diffusion.models import VAE

#: approximation name -> (scale, shift) of the latents of the family it stands in for
TAESD_LATENT_FORMATS: dict[str, tuple[float, float]] = {
    "taesd": (0.18215, 0.0),
    "taesdxl": (0.13025, 0.0),
    "taesd3": (1.5305, 0.0609),
    "taef1": (0.3611, 0.1159),
}
PIXEL_SPACE = "pixel_space"


def approximations_present(approx_files: list[str]) -> list[str]:
    """The TAESD names whose encoder and decoder files are both in ``approx_files``."""
    present = []
    for name in TAESD_LATENT_FORMATS:
        has = [any(f.startswith(f"{name}_{part}.") for f in approx_files) for part in ("encoder", "decoder")]
        if all(has):
            present.append(name)
    return present


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


def taesd_to_diffusers(encoder: dict, decoder: dict) -> dict:
    """TAESD's two ``nn.Sequential`` state dicts -> ``AutoencoderTiny`` keys. diffusers keeps
    the decoder's leading clamp out of its layer list, so decoder indices move down by one."""
    out = {f"encoder.layers.{k}": v for k, v in encoder.items()}
    for key, value in decoder.items():
        index, _, rest = key.partition(".")
        out[f"decoder.layers.{int(index) - 1}.{rest}"] = value
    return out


def load_taesd(name: str, encoder_path: str, decoder_path: str) -> TinyVAE:
    """The ``name`` approximation (a key of :data:`TAESD_LATENT_FORMATS`) from its two files."""
    from accelerate import init_empty_weights
    from diffusers.models.autoencoders.autoencoder_tiny import AutoencoderTiny

    from opencomfy.diffusion.loading import _assign
    from opencomfy.weights import read_state_dict

    state_dict = taesd_to_diffusers(read_state_dict(encoder_path), read_state_dict(decoder_path))
    latent_channels = int(state_dict["decoder.layers.0.weight"].shape[1])
    with init_empty_weights():
        autoencoder = AutoencoderTiny(latent_channels=latent_channels)
    scale, shift = TAESD_LATENT_FORMATS[name]
    return TinyVAE(autoencoder=_assign(autoencoder, state_dict, "vae"), scale=scale, shift=shift, name=name)
