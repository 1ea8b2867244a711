"""The model a MODEL value wraps (ComfyUI's ``comfy.model_base.BaseModel``, ``model.model``).

One :class:`BaseModel` per loaded checkpoint, shared by every clone of its MODEL. It holds the
UNet (``diffusion_model``), the noise schedule (``model_sampling``), the latent format and the
compute dtype, and turns one batched call ``apply_model(x, sigma, c_crossattn=..., ...)`` into
the denoised prediction. A MODEL's object patches replace these attributes only while that MODEL
samples (:meth:`ModelPatcher.patch_model`).
"""

from __future__ import annotations

from types import SimpleNamespace

import torch

from opencomfy.diffusion import patcher_extension as ext
from opencomfy.diffusion.latent_formats import LatentFormat
from opencomfy.diffusion.model_sampling_flow import model_type_of
from opencomfy.diffusion.unet_patches import unet_forward


def _uniform_sigma(t: torch.Tensor) -> float | None:
    """The one sigma of a batch, or None when the batch mixes sigmas."""
    flat = t.reshape(-1)
    first = flat[0]
    return float(first) if bool((flat == first).all()) else None


class BaseModel:
    """The shared model behind MODEL values (see the module docstring)."""

    def __init__(self, *, unet, model_sampling, latent_format: LatentFormat, family: str):
        self.diffusion_model = unet
        self.model_sampling = model_sampling
        self.latent_format = latent_format
        self.family = family
        self.manual_cast_dtype = None
        config = unet.config
        self.model_config = SimpleNamespace(
            unet_config={"model_channels": int(config.block_out_channels[0]),
                         "in_channels": int(config.in_channels), "out_channels": int(config.out_channels),
                         "context_dim": config.cross_attention_dim,
                         "transformer_depth": config.transformer_layers_per_block},
            latent_format=latent_format, sampling_settings={})

    @property
    def model_type(self):
        return model_type_of(self.model_sampling)

    @property
    def device(self) -> torch.device:
        for p in self.diffusion_model.parameters():
            return p.device
        return torch.device("cpu")

    def get_dtype(self) -> torch.dtype:
        # diffusers' ``.dtype`` walks every submodule; the first parameter says the same.
        return next(self.diffusion_model.parameters()).dtype

    def memory_required(self, input_shape) -> int:
        """A rough estimate of the activations' bytes for a batch of ``input_shape``."""
        batch, area = input_shape[0], 1
        for side in input_shape[2:]:
            area *= side
        itemsize = torch.tensor([], dtype=self.manual_cast_dtype or self.get_dtype()).element_size()
        return int(batch * area * itemsize * 64 * 1024 // 64)

    def process_latent_in(self, latent):
        return self.latent_format.process_in(latent)

    def process_latent_out(self, latent):
        return self.latent_format.process_out(latent)

    def apply_model(self, x, t, c_concat=None, c_crossattn=None, control=None, transformer_options=None,
                    **kwargs):
        """The denoised prediction for samples ``x`` at sigmas ``t`` (a [B] tensor)."""
        transformer_options = {} if transformer_options is None else transformer_options
        return ext.run_wrapped(ext.WrappersMP.APPLY_MODEL, transformer_options, self._apply_model, self,
                               x, t, c_concat, c_crossattn, control, transformer_options, **kwargs)

    def _apply_model(self, x, t, c_concat=None, c_crossattn=None, control=None, transformer_options=None,
                     added_cond_kwargs=None, **kwargs):
        sampling = self.model_sampling
        device = x.device
        dtype = self.get_dtype()
        sigma = _uniform_sigma(t)
        if sigma is not None and hasattr(sampling, "input_at"):
            timestep = torch.full((x.shape[0],), sampling.timestep_of(sigma), device=device)
            model_in = sampling.input_at(x, sigma).to(dtype)
        else:
            sigma = None
            timestep = sampling.timestep(t.float()).float().to(device)
            model_in = sampling.calculate_input(t.to(device), x).to(dtype)
        if c_concat is not None:
            model_in = torch.cat([model_in, c_concat.to(device, dtype)], dim=1)
        if c_crossattn is None:
            raise ValueError("apply_model needs the text conditioning (c_crossattn)")
        context = c_crossattn.to(device, dtype)
        added = None
        if added_cond_kwargs is not None:
            added = {k: v.to(device, dtype) for k, v in added_cond_kwargs.items()}
        residuals = None
        if control and any(control):
            residuals = self._control_residuals(model_in, timestep, context, added,
                                                float(t.reshape(-1)[0]), control)
        out = ext.run_wrapped(ext.WrappersMP.DIFFUSION_MODEL, transformer_options,
                              self._diffusion_model, self.diffusion_model, model_in, timestep, context,
                              None, residuals, transformer_options, added_cond_kwargs=added)
        out = out.float()
        if sigma is not None:
            return sampling.denoised_at(x, sigma, out)
        return sampling.calculate_denoised(t.to(device), out, x)

    def _diffusion_model(self, x, timesteps, context, y=None, control=None, transformer_options=None,
                         added_cond_kwargs=None, **kwargs):
        """The UNet forward in model space, with the patches of ``transformer_options``."""
        control = control or {}
        return unet_forward(self.diffusion_model, x, timesteps, context,
                            transformer_options=transformer_options or {},
                            added_cond_kwargs=added_cond_kwargs,
                            down_residuals=control.get("down_block_additional_residuals"),
                            mid_residual=control.get("mid_block_additional_residual"))

    def _control_residuals(self, model_in, timestep, context, added, sigma, controls) -> dict | None:
        """The ControlNet residuals for each equal slice of the batch (zeros where none applies)."""
        from opencomfy.diffusion.controlnet import residuals

        size = model_in.shape[0] // len(controls)
        downs, mids = [], []
        for k, applied in enumerate(controls):
            part = slice(k * size, (k + 1) * size)
            piece_added = {n: v[part] for n, v in added.items()} if added else None
            down, mid = residuals(applied, model_in[part], timestep[part], context[part], piece_added,
                                  sigma, self.model_sampling) if applied else (None, None)
            downs.append(down)
            mids.append(mid)
        template = next((d for d in downs if d is not None), None)
        if template is None:           # no ControlNet active at this sigma
            return None
        mid_template = next(m for m in mids if m is not None)
        down = [torch.cat([d[i] if d is not None else torch.zeros_like(template[i]) for d in downs])
                for i in range(len(template))]
        mid = torch.cat([m if m is not None else torch.zeros_like(mid_template) for m in mids])
        return {"down_block_additional_residuals": down, "mid_block_additional_residual": mid}
