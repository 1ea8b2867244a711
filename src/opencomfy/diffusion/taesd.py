"""TAESD, madebyollin's tiny autoencoder: the one module that knows its files, their key layout
and how its networks are built.

Three users share it: latent previews (a decoder alone, :func:`load_decoder`), VAELoader's
``taesd`` / ``taesdxl`` / ``taesd3`` / ``taef1`` approximations (encoder and decoder as
diffusers' ``AutoencoderTiny``, :func:`build_autoencoder`, wrapped as a VAE by
:mod:`opencomfy.diffusion.approx_vae`), and custom nodes' ``comfy.taesd.taesd`` (the networks in
the files' own layout, :func:`sequential_encoder` / :func:`sequential_decoder`).

The files live in ``models/vae_approx`` as ``<name>_encoder.*`` and ``<name>_decoder.*`` and keep
TAESD's ``nn.Sequential`` key layout. The decoder's entry 0 is a parameterless clamp that
diffusers' ``DecoderTiny`` applies outside its layer list, so there its indices move down by one
(:func:`to_diffusers`). Every network here is built from diffusers' tiny encoder and decoder with
the one configuration below, so all three users run the same layers. A decoder takes latents as
the sampler sees them (family scale and shift applied); the latent formats say which file belongs
to which family (``taesd_decoder_name``) and which scale and shift an approximation undoes.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import torch
from torch import nn

from opencomfy.diffusion import latent_formats

#: VAELoader's approximation name -> the latent format of the family it stands in for
APPROXIMATIONS: dict[str, type[latent_formats.LatentFormat]] = {
    "taesd": latent_formats.SD15, "taesdxl": latent_formats.SDXL,
    "taesd3": latent_formats.SD3, "taef1": latent_formats.Flux,
}


def _scale_and_shift(fmt: type[latent_formats.LatentFormat]) -> tuple[float, float]:
    instance = fmt()
    return float(instance.scale_factor), float(getattr(instance, "shift_factor", 0.0))


#: approximation name -> (scale, shift) of the latents of the family it stands in for
TAESD_LATENT_FORMATS: dict[str, tuple[float, float]] = {
    name: _scale_and_shift(fmt) for name, fmt in APPROXIMATIONS.items()}

# The published networks: 64 channels throughout, ReLU, nearest-neighbour 2x upsampling.
_WIDTHS = (64, 64, 64, 64)
_ENCODER_BLOCKS = (1, 3, 3, 3)
_DECODER_BLOCKS = (3, 3, 3, 1)
_PARTS = ("encoder", "decoder")


# --- files --------------------------------------------------------------------------------

def approximations_present(approx_files: list[str]) -> list[str]:
    """The approximation names whose encoder and decoder files are both in ``approx_files``."""
    return [name for name in APPROXIMATIONS
            if all(any(f.startswith(f"{name}_{part}.") for f in approx_files) for part in _PARTS)]


def find_file(prefix: str) -> str | None:
    """The full path of the first ``models/vae_approx`` file whose name starts with ``prefix``."""
    from opencomfy.compat import folder_paths

    name = next((f for f in folder_paths.get_filename_list("vae_approx") if f.startswith(prefix)), None)
    return folder_paths.get_full_path("vae_approx", name) if name else None


def approximation_files(name: str) -> tuple[str, str]:
    """The encoder and decoder files of approximation ``name``; FileNotFoundError names the
    missing one."""
    paths = []
    for part in _PARTS:
        path = find_file(f"{name}_{part}.")
        if path is None:
            raise FileNotFoundError(f"{name}_{part} is not in models/vae_approx")
        paths.append(path)
    return paths[0], paths[1]


def read_part(path: str, part: str) -> dict:
    """The ``part`` ("encoder" or "decoder") tensors of a file, in TAESD's own layout. A whole
    TAESD saved by ComfyUI (``taesd_encoder.*`` beside ``taesd_decoder.*``) is accepted too."""
    from opencomfy.weights import read_state_dict

    state_dict = read_state_dict(str(path))
    prefix = f"taesd_{part}."
    if any(k.startswith(prefix) for k in state_dict):
        state_dict = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
    return state_dict


# --- key layout and construction ------------------------------------------------------------

def to_diffusers(encoder: dict, decoder: dict) -> dict:
    """TAESD's two ``nn.Sequential`` state dicts -> ``AutoencoderTiny`` keys."""
    out = {f"encoder.layers.{k}": v for k, v in encoder.items()}
    for key, value in decoder.items():
        index, _, rest = key.partition(".")
        out[f"decoder.layers.{int(index) - 1}.{rest}"] = value
    return out


def _latent_channels(decoder: dict) -> int:
    """The latent channels of a decoder state dict in TAESD's layout (its first convolution)."""
    first = decoder.get("1.weight")
    if first is None or first.ndim != 4:
        raise ValueError("not a TAESD decoder: its first convolution (key '1.weight') is missing")
    return int(first.shape[1])


class Clamp(nn.Module):
    """The decoder's soft clamp of its input latents to -3..3."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x / 3) * 3


def sequential_encoder(latent_channels: int = 4) -> nn.Sequential:
    """The encoder in the files' layout: image (0..1) -> latents at 1/8 the size."""
    from diffusers.models.autoencoders.vae import EncoderTiny

    tiny = EncoderTiny(in_channels=3, out_channels=latent_channels, num_blocks=_ENCODER_BLOCKS,
                       block_out_channels=_WIDTHS, act_fn="relu")
    return nn.Sequential(*tiny.layers)


def sequential_decoder(latent_channels: int = 4) -> nn.Sequential:
    """The decoder in the files' layout: latents -> image (0..1) at 8 times the size."""
    from diffusers.models.autoencoders.vae import DecoderTiny

    tiny = DecoderTiny(in_channels=latent_channels, out_channels=3, num_blocks=_DECODER_BLOCKS,
                       block_out_channels=_WIDTHS, upsampling_scaling_factor=2, act_fn="relu",
                       upsample_fn="nearest")
    return nn.Sequential(Clamp(), *tiny.layers)


def build_autoencoder(encoder: dict, decoder: dict):
    """An ``AutoencoderTiny`` with the weights of TAESD's two state dicts, on the offload device."""
    from accelerate import init_empty_weights
    from diffusers.models.autoencoders.autoencoder_tiny import AutoencoderTiny

    from opencomfy.diffusion.loading import _assign

    with init_empty_weights():
        autoencoder = AutoencoderTiny(
            latent_channels=_latent_channels(decoder), encoder_block_out_channels=_WIDTHS,
            decoder_block_out_channels=_WIDTHS, num_encoder_blocks=_ENCODER_BLOCKS,
            num_decoder_blocks=_DECODER_BLOCKS, act_fn="relu", upsample_fn="nearest",
            upsampling_scaling_factor=2)
    return _assign(autoencoder, to_diffusers(encoder, decoder), "vae")


# --- preview decoders ---------------------------------------------------------------------

class TAESDDecoder(nn.Module):
    """``decode(latents) -> images`` (``[B, 3, 8h, 8w]`` in -1..1), as ComfyUI's ``TAESD``."""

    def __init__(self, decoder: nn.Module, latent_channels: int):
        super().__init__()
        self.decoder = decoder
        self.latent_channels = latent_channels

    @torch.inference_mode()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        weight = next(self.decoder.parameters())
        return self.decoder(latents.to(weight.device, weight.dtype)).float().mul(2).sub(1)

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        return self.decode(latents)


def build_decoder(state_dict: dict) -> TAESDDecoder:
    """A float32 CPU decoder from a decoder state dict in TAESD's layout."""
    latent_channels = _latent_channels(state_dict)
    decoder = sequential_decoder(latent_channels)
    decoder.load_state_dict({k: v.float() for k, v in state_dict.items()}, strict=True)
    return TAESDDecoder(decoder.eval().requires_grad_(False), latent_channels)


_lock = threading.Lock()
_decoders: OrderedDict[tuple, TAESDDecoder] = OrderedDict()
_KEEP = 2     # the families a server alternates between at most, in practice


def load_decoder(path: str) -> TAESDDecoder:
    """The decoder in ``path``, read once per file version: a preview per sampling run must not
    re-read the file."""
    from opencomfy.diffusion.cache import file_key

    key = file_key(path)
    with _lock:
        if key in _decoders:
            _decoders.move_to_end(key)
            return _decoders[key]
    decoder = build_decoder(read_part(path, "decoder"))
    with _lock:
        _decoders[key] = decoder
        while len(_decoders) > _KEEP:
            _decoders.popitem(last=False)
    return decoder
