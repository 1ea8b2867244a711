"""ComfyUI's ``comfy.latent_formats``: the diffusion layer's latent formats under ComfyUI's name.

The formats and their published numbers live once, in :mod:`opencomfy.diffusion.latent_formats`;
a pack that reads ``comfy.latent_formats.SDXL().latent_rgb_factors`` or subclasses
``LatentFormat`` gets the very classes the server's previews and TAESD approximations use.
"""

from __future__ import annotations

from opencomfy.diffusion.latent_formats import (
    SD3,
    SD15,
    SD_X4,
    SDXL,
    ACEAudio,
    ChromaRadiance,
    Cosmos1CV8x8x8,
    Flux,
    Flux2,
    Hunyuan3Dv2,
    Hunyuan3Dv2_1,
    Hunyuan3Dv2mini,
    HunyuanVideo,
    LatentFormat,
    LTXV,
    Mochi,
    SC_B,
    SC_Prior,
    SDXL_Playground_2_5,
    StableAudio1,
    Wan21,
    Wan22,
)

__all__ = [
    "ACEAudio", "ChromaRadiance", "Cosmos1CV8x8x8", "Flux", "Flux2", "Hunyuan3Dv2", "Hunyuan3Dv2_1",
    "Hunyuan3Dv2mini", "HunyuanVideo", "LTXV", "LatentFormat", "Mochi", "SC_B", "SC_Prior", "SD15",
    "SD3", "SDXL", "SDXL_Playground_2_5", "SD_X4", "StableAudio1", "Wan21", "Wan22",
]
