"""The objects that travel between nodes as MODEL and VAE (CLIP is in :mod:`text_encoder`).

They wrap diffusers modules with ComfyUI's conventions: a LATENT's ``samples`` are the VAE's
raw latents (the model's scale factor is applied on the way into sampling and removed on the
way out), an IMAGE is ``[B, H, W, C]`` floats in 0..1 on the CPU.
"""

from __future__ import annotations

import copy

import torch

from opencomfy.diffusion.memory import models_in_use
from opencomfy.diffusion.model_sampling import DiscreteSchedule

# Latent -> RGB for cheap previews (a least-squares fit of SD 1.x latents to pixels).
SD1_LATENT_RGB = [[0.3512, 0.2297, 0.3227], [0.3250, 0.4974, 0.2350],
                  [-0.2829, 0.1762, 0.2721], [-0.2120, -0.2616, -0.7177]]
SDXL_LATENT_RGB = [[0.3651, 0.4232, 0.4341], [-0.2533, -0.0042, 0.1068],
                   [0.1076, 0.1111, -0.0362], [-0.3165, -0.2492, -0.2188]]


class DiffusionModel:
    """ComfyUI's MODEL: the UNet, its noise schedule, its latent scale and LoRA patches."""

    def __init__(self, *, unet, schedule: DiscreteSchedule, scale_factor: float, family: str,
                 latent_rgb=SD1_LATENT_RGB):
        self.unet = unet
        self.schedule = schedule
        self.scale_factor = scale_factor
        self.family = family
        self.latent_rgb = latent_rgb
        self.patches: list = []
        self.model_options: dict = {}

    def modules(self):
        return [self.unet]

    def clone(self) -> "DiffusionModel":
        other = copy.copy(self)
        other.patches = list(self.patches)
        other.model_options = dict(self.model_options)
        return other

    @property
    def latent_channels(self) -> int:
        return int(self.unet.config.out_channels)

    @property
    def is_inpaint(self) -> bool:
        """Inpainting UNets take 5 more channels: the mask and the masked image's latent."""
        return int(self.unet.config.in_channels) == self.latent_channels + 5

    def process_latent_in(self, latent: torch.Tensor) -> torch.Tensor:
        return latent * self.scale_factor

    def process_latent_out(self, latent: torch.Tensor) -> torch.Tensor:
        return latent / self.scale_factor

    @property
    def needs_pooled(self) -> bool:
        """SDXL's UNet also takes the pooled text embedding and the size/crop "time ids"."""
        return getattr(self.unet.config, "addition_embed_type", None) == "text_time"

    def predict_noise(self, x: torch.Tensor, sigma: "torch.Tensor | float", context: torch.Tensor,
                      pooled: torch.Tensor | None = None, time_ids: torch.Tensor | None = None,
                      controls: list | None = None, concat: torch.Tensor | None = None) -> torch.Tensor:
        """The UNet's prediction for samples ``x`` at per-sample ``sigma`` (inside models_in_use).

        ``controls``: for each equal slice of the batch, the ControlNets applied to it (or ()).
        """
        # diffusers' ``.dtype`` walks every submodule; the first parameter says the same.
        dtype = next(self.unet.parameters()).dtype
        device = x.device
        if isinstance(sigma, float):       # one sigma for the whole batch (the usual case)
            timestep = torch.full((x.shape[0],), self.schedule.timestep_of(sigma), device=device)
            model_in = (x * (1.0 / (sigma ** 2 + 1.0) ** 0.5)).to(dtype)
            sigma_value = sigma
        else:
            timestep = self.schedule.timestep(sigma.float()).to(device)
            model_in = self.schedule.model_input(x, sigma.to(device)).to(dtype)
            sigma_value = float(sigma[0])
        if concat is not None:
            model_in = torch.cat([model_in, concat.to(device, dtype)], dim=1)
        context = context.to(device, dtype)
        extra = {}
        added = None
        if self.needs_pooled:
            added = {"text_embeds": pooled.to(device, dtype), "time_ids": time_ids.to(device, dtype)}
            extra["added_cond_kwargs"] = added
        if controls and any(controls):
            extra.update(self._control_residuals(model_in, timestep, context, added, sigma_value, controls))
        out = self.unet(model_in, timestep, encoder_hidden_states=context, return_dict=False, **extra)[0]
        return out.float()

    def _control_residuals(self, model_in, timestep, context, added, sigma, controls) -> dict:
        from opencomfy.diffusion.controlnet import residuals

        size = model_in.shape[0] // len(controls)
        downs, mids = [], []
        for k, applied in enumerate(controls):
            part = slice(k * size, (k + 1) * size)
            piece_added = {n: v[part] for n, v in added.items()} if added else None
            down, mid = residuals(applied, model_in[part], timestep[part], context[part], piece_added,
                                  sigma, self.schedule) if applied else (None, None)
            downs.append(down)
            mids.append(mid)
        template = next((d for d in downs if d is not None), None)
        if template is None:           # no ControlNet active at this sigma
            return {}
        mid_template = next(m for m in mids if m is not None)
        down = [torch.cat([d[i] if d is not None else torch.zeros_like(template[i]) for d in downs])
                for i in range(len(template))]
        mid = torch.cat([m if m is not None else torch.zeros_like(mid_template) for m in mids])
        return {"down_block_additional_residuals": down, "mid_block_additional_residual": mid}

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
