"""The objects that travel between nodes as MODEL and VAE (CLIP is in :mod:`text_encoder`).

They wrap diffusers modules with ComfyUI's conventions: a LATENT's ``samples`` are the VAE's
raw latents (the model's scale factor is applied on the way into sampling and removed on the
way out), an IMAGE is ``[B, H, W, C]`` floats in 0..1 on the CPU.
"""

from __future__ import annotations

import torch

from opencomfy.diffusion.base_model import BaseModel
from opencomfy.diffusion.latent_formats import LatentFormat, family_format
from opencomfy.diffusion.memory import compute_device, models_in_use, offload_device
from opencomfy.diffusion.model_patcher import ModelPatcher
from opencomfy.diffusion.model_sampling_flow import as_model_sampling


def _latent_format(family: str, scale_factor: float) -> LatentFormat:
    """The family's latent format (its preview factors and TAESD decoder), at the scale the
    checkpoint's VAE config names when that differs from the family's usual one."""
    found = family_format(family)
    if scale_factor != found.scale_factor:
        found.scale_factor = scale_factor
    return found


class DiffusionModel(ModelPatcher):
    """ComfyUI's MODEL: a :class:`ModelPatcher` over a :class:`BaseModel` (the UNet, its noise
    schedule and latent format), with this value's patches."""

    def __init__(self, *, unet, schedule, scale_factor: float, family: str):
        base = BaseModel(unet=unet, model_sampling=as_model_sampling(schedule),
                         latent_format=_latent_format(family, scale_factor), family=family)
        super().__init__(base, load_device=compute_device(), offload_device=offload_device())
        self.family = family

    # Our code's names for the model's parts (ComfyUI's are on ``self.model``).
    @property
    def unet(self):
        return self.model.diffusion_model

    @property
    def schedule(self):
        """The noise schedule this MODEL samples with (its ``model_sampling``)."""
        return self.get_model_object("model_sampling")

    @schedule.setter
    def schedule(self, value) -> None:
        self.add_object_patch("model_sampling", as_model_sampling(value))

    def add_object_patch(self, name: str, obj) -> None:
        if name == "model_sampling":
            obj = as_model_sampling(obj)
        super().add_object_patch(name, obj)

    @property
    def latent_format(self) -> LatentFormat:
        return self.get_model_object("latent_format")

    @property
    def scale_factor(self) -> float:
        return self.latent_format.scale_factor

    @property
    def latent_channels(self) -> int:
        return int(self.unet.config.out_channels)

    @property
    def is_inpaint(self) -> bool:
        """Inpainting UNets take 5 more channels: the mask and the masked image's latent."""
        return int(self.unet.config.in_channels) == self.latent_channels + 5

    def process_latent_in(self, latent: torch.Tensor) -> torch.Tensor:
        return self.latent_format.process_in(latent)

    def process_latent_out(self, latent: torch.Tensor) -> torch.Tensor:
        return self.latent_format.process_out(latent)

    @property
    def needs_pooled(self) -> bool:
        """SDXL's UNet also takes the pooled text embedding and the size/crop "time ids"."""
        return getattr(self.unet.config, "addition_embed_type", None) == "text_time"

    def denoise_batch(self, x: torch.Tensor, sigma: float, context: torch.Tensor, *,
                      pooled: torch.Tensor | None = None, time_ids: torch.Tensor | None = None,
                      controls: list | None = None, concat: torch.Tensor | None = None,
                      model_options: dict | None = None, cond_or_uncond: list | None = None) -> torch.Tensor:
        """The denoised prediction for a batch at one sigma (inside models_in_use), through the
        MODEL's ``model_function_wrapper`` and wrappers as ComfyUI's ``calc_cond_batch`` calls it.

        ``controls``: for each equal slice of the batch, the ControlNets applied to it (or ()).
        """
        options = model_options if model_options is not None else self.model_options
        # float64, so the sigma survives the trip through the tensor exactly.
        timestep = torch.full((x.shape[0],), float(sigma), dtype=torch.float64, device=x.device)
        to = dict(options.get("transformer_options", {}))
        to["cond_or_uncond"] = list(cond_or_uncond or [])
        to["sigmas"] = timestep
        c = {"c_crossattn": context, "c_concat": concat, "control": controls, "transformer_options": to}
        if self.needs_pooled:
            if pooled is None or time_ids is None:
                raise ValueError("this model needs the pooled text embedding and size conditioning "
                                 "(an SDXL CLIP's CLIPTextEncode output)")
            c["added_cond_kwargs"] = {"text_embeds": pooled, "time_ids": time_ids}
        # Callers outside CFGGuider.sample (which patches once per run) get the object patches
        # for this call only.
        patch_here = bool(self.object_patches) and not self.object_patches_backup
        if patch_here:
            self.patch_model()
        try:
            wrapper = options.get("model_function_wrapper")
            if wrapper is not None:
                out = wrapper(self.model.apply_model, {"input": x, "timestep": timestep, "c": c,
                                                       "cond_or_uncond": to["cond_or_uncond"]})
            else:
                out = self.model.apply_model(x, timestep, **c)
        finally:
            if patch_here:
                self.unpatch_model()
        return out.float()

    def patch_model(self, device_to=None, lowvram_model_memory: int = 0, load_weights: bool = True,
                    force_patch_weights: bool = False):
        """Object patches on; with a compute dtype, the UNet's weights cast for the run."""
        super().patch_model(device_to, lowvram_model_memory, load_weights, force_patch_weights)
        dtype = self.object_patches.get("manual_cast_dtype")
        self._cast_back = {}
        if dtype is not None and dtype != self.model.get_dtype():
            # The original tensors are kept, so casting back loses nothing.
            for p in self.unet.parameters():
                self._cast_back[p] = p.data
                p.data = p.data.to(dtype)
        return self.model

    def unpatch_model(self, device_to=None, unpatch_weights: bool = True) -> None:
        for p, data in getattr(self, "_cast_back", {}).items():
            p.data = data
        self._cast_back = {}
        super().unpatch_model(device_to, unpatch_weights)

    def __repr__(self) -> str:
        return f"<MODEL {self.family} patches={len(self.patches)}>"


class VAE:
    """ComfyUI's VAE over a diffusers ``AutoencoderKL``."""

    downscale_ratio = 8

    def __init__(self, *, autoencoder):
        self.autoencoder = autoencoder
        self.patches: list = []

    def modules(self):
        return [self.autoencoder]

    @property
    def latent_channels(self) -> int:
        return int(self.autoencoder.config.latent_channels)

    def _crop_to_multiple(self, pixels: torch.Tensor) -> torch.Tensor:
        r = self.downscale_ratio
        h, w = (pixels.shape[1] // r) * r, (pixels.shape[2] // r) * r
        if (h, w) != tuple(pixels.shape[1:3]):
            top, left = (pixels.shape[1] % r) // 2, (pixels.shape[2] % r) // 2
            pixels = pixels[:, top:top + h, left:left + w, :]
        return pixels

    def decode(self, samples: torch.Tensor) -> torch.Tensor:
        """Raw latents ``[B, C, h, w]`` -> IMAGE ``[B, 8h, 8w, 3]``."""
        with models_in_use(self) as device:
            dtype = self.autoencoder.dtype
            out = self.autoencoder.decode(samples.to(device, dtype), return_dict=False)[0]
        return ((out.float() + 1.0) / 2.0).clamp(0, 1).permute(0, 2, 3, 1).cpu()

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        """IMAGE ``[B, H, W, C]`` -> raw latents (the mean of the encoder's distribution)."""
        pixels = self._crop_to_multiple(pixels[..., :3])
        with models_in_use(self) as device:
            dtype = self.autoencoder.dtype
            x = pixels.permute(0, 3, 1, 2).to(device, dtype) * 2.0 - 1.0
            dist = self.autoencoder.encode(x, return_dict=False)[0]
            latent = dist.mode()
        return latent.float().cpu()

    def decode_tiled(self, samples: torch.Tensor, *, tile: int = 64, overlap: int = 8) -> torch.Tensor:
        """Decode in overlapping latent tiles (``tile`` and ``overlap`` in latent pixels)."""
        from opencomfy.diffusion.tiling import run_tiled

        r = self.downscale_ratio
        out = run_tiled(samples, lambda t: self.decode(t).permute(0, 3, 1, 2), tile=tile,
                        overlap=overlap, scale=r, out_channels=3)
        return out.permute(0, 2, 3, 1)

    def encode_tiled(self, pixels: torch.Tensor, *, tile: int = 512, overlap: int = 64) -> torch.Tensor:
        """Encode in overlapping pixel tiles (``tile`` and ``overlap`` in pixels)."""
        from opencomfy.diffusion.tiling import run_tiled

        r = self.downscale_ratio
        pixels = self._crop_to_multiple(pixels[..., :3]).permute(0, 3, 1, 2)
        return run_tiled(pixels, lambda t: self.encode(t.permute(0, 2, 3, 1)), tile=tile,
                         overlap=overlap, scale=1 / r, out_channels=self.latent_channels, step=r)

    def __repr__(self) -> str:
        return "<VAE>"
