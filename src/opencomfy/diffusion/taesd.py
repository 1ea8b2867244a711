"""TAESD preview decoders: the tiny decoder half of madebyollin's TAESD, read from
``models/vae_approx`` (``taesd_decoder.*``, ``taesdxl_decoder.*``, ``taesd3_decoder.*``,
``taef1_decoder.*``) into diffusers' ``DecoderTiny``.

The files keep TAESD's own ``nn.Sequential`` key layout, whose first entry is a parameterless
clamp; ``DecoderTiny`` applies that clamp outside its layer list, so the indices move down by one
(:func:`opencomfy.diffusion.approx_vae.taesd_to_diffusers`). A decoder takes latents as the
sampler sees them (family scale and shift applied) and returns images in -1..1. Loaded decoders
are kept by file identity: a preview per sampling run must not re-read the file.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import torch

_lock = threading.Lock()
_decoders: OrderedDict[tuple, "TAESDDecoder"] = OrderedDict()
_KEEP = 2     # the families a server alternates between at most, in practice


class TAESDDecoder(torch.nn.Module):
    """``decode(latents) -> images`` (``[B, 3, 8h, 8w]`` in -1..1), as ComfyUI's ``TAESD``."""

    def __init__(self, decoder: torch.nn.Module, latent_channels: int):
        super().__init__()
        self.decoder = decoder
        self.latent_channels = latent_channels

    @torch.inference_mode()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        weight = next(self.decoder.parameters())
        return self.decoder(latents.to(weight.device, weight.dtype)).float()

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        return self.decode(latents)


def decoder_keys(state_dict: dict) -> dict:
    """A TAESD decoder file's tensors -> ``DecoderTiny`` keys. A whole-VAE file saved by
    ComfyUI (``taesd_decoder.*`` next to ``taesd_encoder.*``) is accepted too."""
    from opencomfy.diffusion.approx_vae import taesd_to_diffusers

    prefix = "taesd_decoder."
    if any(k.startswith(prefix) for k in state_dict):
        state_dict = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
    mapped = taesd_to_diffusers({}, state_dict)
    return {k[len("decoder."):]: v for k, v in mapped.items()}


def build_decoder(state_dict: dict) -> TAESDDecoder:
    """A float32 CPU decoder from a TAESD decoder state dict (latent channels from its shapes)."""
    from diffusers.models.autoencoders.vae import DecoderTiny

    weights = decoder_keys(state_dict)
    first = weights.get("layers.0.weight")
    if first is None or first.ndim != 4:
        raise ValueError("not a TAESD decoder: its first convolution (key '1.weight') is missing")
    latent_channels = int(first.shape[1])
    decoder = DecoderTiny(in_channels=latent_channels, out_channels=3, num_blocks=(3, 3, 3, 1),
                          block_out_channels=(64, 64, 64, 64), upsampling_scaling_factor=2,
                          act_fn="relu", upsample_fn="nearest")
    decoder.load_state_dict({k: v.float() for k, v in weights.items()}, strict=True)
    return TAESDDecoder(decoder.eval().requires_grad_(False), latent_channels)


def find_decoder_file(decoder_name: str) -> str | None:
    """The full path of the first ``models/vae_approx`` file named ``<decoder_name>...``."""
    from opencomfy.compat import folder_paths

    name = next((f for f in folder_paths.get_filename_list("vae_approx") if f.startswith(decoder_name)), None)
    return folder_paths.get_full_path("vae_approx", name) if name else None


def load_decoder(path: str) -> TAESDDecoder:
    """The decoder in ``path``, read once per file version."""
    from opencomfy.diffusion.cache import file_key
    from opencomfy.weights import read_state_dict

    key = file_key(path)
    with _lock:
        if key in _decoders:
            _decoders.move_to_end(key)
            return _decoders[key]
    decoder = build_decoder(read_state_dict(path))
    with _lock:
        _decoders[key] = decoder
        while len(_decoders) > _KEEP:
            _decoders.popitem(last=False)
    return decoder
