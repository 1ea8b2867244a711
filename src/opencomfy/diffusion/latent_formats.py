"""Latent formats: how each model family's latents are scaled and previewed (ComfyUI's
``comfy.latent_formats``, which :mod:`opencomfy.compat.comfy.latent_formats` re-exports).

A latent format maps raw VAE latents to the space the diffusion model works in
(``process_in``: scale, shift, or per-channel normalisation) and back (``process_out``), and
carries what a cheap preview needs: a channel -> RGB matrix with a bias, and the TAESD decoder
that approximates the family's VAE. The numbers are the published values of each family
(``latent_format_data.json``), kept here once: the previews, the TAESD approximations and the
packs (``latent_formats.SDXL().latent_rgb_factors``) all read them from this module.
:func:`latent_format_of` finds the format of a MODEL.
"""

from __future__ import annotations

import copy
import json
from functools import lru_cache
from pathlib import Path

import torch


@lru_cache(maxsize=1)
def _data() -> dict:
    return json.loads((Path(__file__).with_name("latent_format_data.json")).read_text())


def _published(name: str):
    """Class decorator: family ``name``'s RGB factors, bias and channel statistics."""

    def apply(cls):
        entry = _data()[name]
        cls.latent_rgb_factors = entry["rgb"]
        if "bias" in entry:
            cls.latent_rgb_factors_bias = entry["bias"]
        if "mean" in entry:
            cls.latents_mean_values, cls.latents_std_values = entry["mean"], entry["std"]
        return cls

    return apply


class LatentFormat:
    """The identity format: ``process_in`` multiplies by ``scale_factor``, ``process_out`` divides."""

    scale_factor = 1.0
    latent_channels = 4
    latent_dimensions = 2
    latent_rgb_factors: list | None = None
    latent_rgb_factors_bias: list | None = None
    latent_rgb_factors_reshape = None
    taesd_decoder_name: str | None = None
    spacial_downscale_ratio = 8
    temporal_downscale_ratio = 1
    compile_preview = False

    def __init__(self) -> None:
        # Each instance owns its lists (a pack may edit them), as in ComfyUI.
        for name in ("latent_rgb_factors", "latent_rgb_factors_bias"):
            value = getattr(type(self), name)
            if value is not None:
                setattr(self, name, copy.deepcopy(value))

    def process_in(self, latent: torch.Tensor) -> torch.Tensor:
        return latent * self.scale_factor

    def process_out(self, latent: torch.Tensor) -> torch.Tensor:
        return latent / self.scale_factor

    def fix_empty_latent(self, latent: torch.Tensor) -> torch.Tensor:
        return latent


class _Shifted(LatentFormat):
    """Latents shifted, then scaled (SD3, Flux)."""

    shift_factor = 0.0

    def process_in(self, latent):
        return (latent - self.shift_factor) * self.scale_factor

    def process_out(self, latent):
        return latent / self.scale_factor + self.shift_factor


class _Normalised(LatentFormat):
    """Latents normalised per channel by the VAE's mean and deviation, then scaled."""

    latents_mean_values: list = []
    latents_std_values: list = []

    def __init__(self) -> None:
        super().__init__()
        shape = (1, self.latent_channels) + (1,) * self.latent_dimensions
        self.latents_mean = torch.tensor(self.latents_mean_values).view(shape)
        self.latents_std = torch.tensor(self.latents_std_values).view(shape)

    def process_in(self, latent):
        mean = self.latents_mean.to(latent.device, latent.dtype)
        std = self.latents_std.to(latent.device, latent.dtype)
        return (latent - mean) * self.scale_factor / std

    def process_out(self, latent):
        mean = self.latents_mean.to(latent.device, latent.dtype)
        std = self.latents_std.to(latent.device, latent.dtype)
        return latent * std / self.scale_factor + mean


@_published("SD15")
class SD15(LatentFormat):
    taesd_decoder_name = "taesd_decoder"

    def __init__(self, scale_factor: float = 0.18215) -> None:
        super().__init__()
        self.scale_factor = scale_factor


@_published("SDXL")
class SDXL(LatentFormat):
    scale_factor = 0.13025
    taesd_decoder_name = "taesdxl_decoder"


@_published("SDXL_Playground_2_5")
class SDXL_Playground_2_5(_Normalised):
    scale_factor = 0.5
    taesd_decoder_name = "taesdxl_decoder"


@_published("SD_X4")
class SD_X4(LatentFormat):
    scale_factor = 0.08333


@_published("SC_Prior")
class SC_Prior(LatentFormat):
    latent_channels = 16
    spacial_downscale_ratio = 42


@_published("SC_B")
class SC_B(LatentFormat):
    scale_factor = 1.0 / 0.43
    spacial_downscale_ratio = 4


@_published("SD3")
class SD3(_Shifted):
    latent_channels = 16
    scale_factor = 1.5305
    shift_factor = 0.0609
    taesd_decoder_name = "taesd3_decoder"


class StableAudio1(LatentFormat):
    latent_channels = 64
    latent_dimensions = 1
    temporal_downscale_ratio = 2048


@_published("Flux")
class Flux(SD3):
    scale_factor = 0.3611
    shift_factor = 0.1159
    taesd_decoder_name = "taef1_decoder"


@_published("Flux2")
class Flux2(LatentFormat):
    """128 channels that are 2x2 patches of 32: previews unpack them to 32 channels first."""

    latent_channels = 128
    spacial_downscale_ratio = 16
    taesd_decoder_name = "taef2_decoder"

    def __init__(self) -> None:
        super().__init__()
        self.latent_rgb_factors_reshape = self._unpatchify

    @staticmethod
    def _unpatchify(t: torch.Tensor) -> torch.Tensor:
        b, _, h, w = t.shape
        t = t.reshape(b, 32, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3)
        return t.reshape(b, 32, h * 2, w * 2)

    def process_in(self, latent):
        return latent

    def process_out(self, latent):
        return latent


@_published("Mochi")
class Mochi(_Normalised):
    latent_channels = 12
    latent_dimensions = 3
    temporal_downscale_ratio = 6


@_published("LTXV")
class LTXV(LatentFormat):
    latent_channels = 128
    latent_dimensions = 3
    spacial_downscale_ratio = 32
    temporal_downscale_ratio = 8


@_published("HunyuanVideo")
class HunyuanVideo(LatentFormat):
    latent_channels = 16
    latent_dimensions = 3
    temporal_downscale_ratio = 4
    scale_factor = 0.476986
    taesd_decoder_name = "taehv"


@_published("Cosmos1CV8x8x8")
class Cosmos1CV8x8x8(LatentFormat):
    latent_channels = 16
    latent_dimensions = 3
    temporal_downscale_ratio = 8


@_published("Wan21")
class Wan21(_Normalised):
    latent_channels = 16
    latent_dimensions = 3
    temporal_downscale_ratio = 4
    taesd_decoder_name = "lighttaew2_1"


@_published("Wan22")
class Wan22(Wan21):
    latent_channels = 48
    spacial_downscale_ratio = 16
    taesd_decoder_name = "lighttaew2_2"


class Hunyuan3Dv2(LatentFormat):
    latent_channels = 64
    latent_dimensions = 1
    scale_factor = 0.9990943042622529


class Hunyuan3Dv2_1(Hunyuan3Dv2):
    scale_factor = 1.0039506158752403


class Hunyuan3Dv2mini(Hunyuan3Dv2):
    scale_factor = 1.0188137142395404


class ACEAudio(LatentFormat):
    latent_channels = 8
    latent_dimensions = 2


@_published("ChromaRadiance")
class ChromaRadiance(LatentFormat):
    """Pixel space: the "latent" is the RGB image itself."""

    latent_channels = 3
    spacial_downscale_ratio = 1

    def process_in(self, latent):
        return latent

    def process_out(self, latent):
        return latent


#: model family (``DiffusionModel.family``) -> its latent format; SD 2.x shares SD 1.x's VAE.
FAMILY_FORMATS: dict[str, type[LatentFormat]] = {
    "sd1": SD15, "sd2": SD15, "sdxl": SDXL, "sdxl_refiner": SDXL, "sd_x4": SD_X4, "sd3": SD3, "flux": Flux,
}


def family_format(family: str | None) -> LatentFormat:
    """A fresh latent format object of ``family`` (SD 1.x for an unknown one)."""
    return FAMILY_FORMATS.get(str(family), SD15)()


def latent_format_of(model):
    """The latent format of a MODEL: its own (or object-patched) ``latent_format``, as ComfyUI's
    ``model.model.latent_format``; the family's when the model carries none."""
    found = None
    getter = getattr(model, "get_model_object", None)
    if callable(getter):
        try:
            found = getter("latent_format")
        except AttributeError:
            found = None
    if found is None:
        for holder in (getattr(model, "model", None), model):
            found = getattr(holder, "latent_format", None)
            if found is not None:
                break
    if found is None:
        return family_format(getattr(model, "family", None))
    return found
