"""ComfyUI's ``comfy.model_sampling``: prediction types and sigma schedules, as packs combine them.

Packs build a model's sampling object the ComfyUI way, from a schedule class and a
prediction-type mixin (``class Advanced(ModelSamplingDiscreteFlow, CONST): ...``) and patch
it onto a model. The prediction types and the continuous/flow schedules are
:mod:`opencomfy.diffusion.model_sampling_flow`'s; the discrete DDPM schedule is here as
ComfyUI shapes it (a ``torch.nn.Module`` built from a model config's sampling settings, with
``sigmas``/``log_sigmas`` buffers), with the float helpers our samplers call as well.
"""

from __future__ import annotations

import math

import torch

from opencomfy.diffusion.model_sampling_flow import (
    CONST,
    COSMOS_RFLOW,
    EDM,
    EPS,
    IMG_TO_IMG,
    V_PREDICTION,
    X0,
    ModelSamplingContinuousEDM,
    ModelSamplingContinuousV,
    ModelSamplingCosmosRFlow,
    ModelSamplingDiscreteFlow,
    ModelSamplingFlux,
    flux_time_shift,
    time_snr_shift,
)
from opencomfy.diffusion.model_sampling_flow import ModelSamplingStableCascade as StableCascadeSampling

__all__ = [
    "CONST", "COSMOS_RFLOW", "EDM", "EPS", "IMG_TO_IMG", "V_PREDICTION", "X0", "LCM",
    "ModelSamplingContinuousEDM", "ModelSamplingContinuousV", "ModelSamplingCosmosRFlow",
    "ModelSamplingDiscrete", "ModelSamplingDiscreteDistilled", "ModelSamplingDiscreteFlow",
    "ModelSamplingFlux", "StableCascadeSampling", "flux_time_shift", "time_snr_shift",
    "make_beta_schedule", "rescale_zero_terminal_snr_sigmas",
]


def make_beta_schedule(schedule: str, n_timestep: int, linear_start: float = 1e-4,
                       linear_end: float = 2e-2, cosine_s: float = 8e-3) -> torch.Tensor:
    """DDPM betas by the latent-diffusion names: ``linear`` is linear in sqrt(beta) (the SD
    schedule), ``sqrt_linear`` linear in beta, ``cosine`` Nichol & Dhariwal's."""
    if schedule == "linear":
        return torch.linspace(linear_start ** 0.5, linear_end ** 0.5, n_timestep, dtype=torch.float64) ** 2
    if schedule == "sqrt_linear":
        return torch.linspace(linear_start, linear_end, n_timestep, dtype=torch.float64)
    if schedule == "sqrt":
        return torch.linspace(linear_start, linear_end, n_timestep, dtype=torch.float64) ** 0.5
    if schedule in ("cosine", "squaredcos_cap_v2"):
        t = torch.arange(n_timestep + 1, dtype=torch.float64) / n_timestep
        alphas = torch.cos((t + cosine_s) / (1 + cosine_s) * math.pi / 2) ** 2
        alphas = alphas / alphas[0]
        return (1 - alphas[1:] / alphas[:-1]).clamp(0, 0.999)
    raise ValueError(f"unknown beta schedule {schedule!r}")


def rescale_zero_terminal_snr_sigmas(sigmas: torch.Tensor) -> torch.Tensor:
    """Sigmas rescaled so the last step has zero SNR (Lin et al. 2023), the last one kept finite."""
    root = (1.0 / (sigmas * sigmas + 1.0)).sqrt()
    first, last = root[0].clone(), root[-1].clone()
    root = (root - last) * first / (first - last)
    alphas_bar = root ** 2
    alphas_bar[-1] = 4.8973451890853435e-08
    return ((1 - alphas_bar) / alphas_bar) ** 0.5


class ModelSamplingDiscrete(torch.nn.Module):
    """The discrete DDPM schedule of SD 1.x/2.x/XL: 1000 training sigmas, timesteps by index.

    Built from ``model_config.sampling_settings`` (``beta_schedule``, ``linear_start``,
    ``linear_end``, ``timesteps``, ``zsnr``). Combine with a prediction type (EPS, V_PREDICTION...).
    """

    sigmas: torch.Tensor
    log_sigmas: torch.Tensor

    def __init__(self, model_config=None, zsnr=None):
        super().__init__()
        settings = getattr(model_config, "sampling_settings", None) or {}
        if zsnr is None:
            zsnr = settings.get("zsnr", False)
        self._register_schedule(given_betas=None, beta_schedule=settings.get("beta_schedule", "linear"),
                                timesteps=settings.get("timesteps", 1000),
                                linear_start=settings.get("linear_start", 0.00085),
                                linear_end=settings.get("linear_end", 0.012), cosine_s=8e-3, zsnr=zsnr)
        self.sigma_data = 1.0

    def _register_schedule(self, given_betas=None, beta_schedule="linear", timesteps=1000,
                           linear_start=1e-4, linear_end=2e-2, cosine_s=8e-3, zsnr=False) -> None:
        betas = torch.as_tensor(given_betas, dtype=torch.float64) if given_betas is not None else \
            make_beta_schedule(beta_schedule, timesteps, linear_start, linear_end, cosine_s)
        alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
        self.num_timesteps = int(betas.shape[0])
        self.linear_start, self.linear_end, self.zsnr = linear_start, linear_end, zsnr
        sigmas = ((1 - alphas_cumprod) / alphas_cumprod) ** 0.5
        if zsnr:
            sigmas = rescale_zero_terminal_snr_sigmas(sigmas)
        self.set_sigmas(sigmas)

    def set_sigmas(self, sigmas: torch.Tensor) -> None:
        self.register_buffer("sigmas", sigmas.float())
        self.register_buffer("log_sigmas", sigmas.log().float())

    @property
    def sigma_min(self) -> torch.Tensor:
        return self.sigmas[0]

    @property
    def sigma_max(self) -> torch.Tensor:
        return self.sigmas[-1]

    def timestep(self, sigma: torch.Tensor) -> torch.Tensor:
        """The training index nearest each sigma in log sigma."""
        log_sigma = sigma.log()
        dists = log_sigma.to(self.log_sigmas.device) - self.log_sigmas[:, None]
        return dists.abs().argmin(dim=0).view(sigma.shape).to(sigma.device)

    def sigma(self, timestep) -> torch.Tensor:
        """The sigma of a (fractional) timestep, interpolated in log sigma."""
        timestep = torch.as_tensor(timestep)
        t = torch.clamp(timestep.float().to(self.log_sigmas.device), min=0, max=len(self.sigmas) - 1)
        low, high = t.floor().long(), t.ceil().long()
        w = t.frac()
        log_sigma = (1 - w) * self.log_sigmas[low] + w * self.log_sigmas[high]
        return log_sigma.exp().to(timestep.device)

    def percent_to_sigma(self, percent: float) -> float:
        if percent <= 0.0:
            return 999999999.9
        if percent >= 1.0:
            return 0.0
        return self.sigma(torch.tensor((1.0 - percent) * 999.0)).item()

    # Our samplers' float helpers (DiscreteSchedule's names), over ComfyUI's methods.
    def timestep_of(self, sigma: float) -> float:
        return float(self.timestep(torch.tensor([sigma], dtype=torch.float32))[0])

    def denoised(self, x, sigma, model_output):
        return self.calculate_denoised(sigma, model_output, x)  # type: ignore[attr-defined]

    def denoised_at(self, x, sigma: float, model_output):
        return self.calculate_denoised(sigma, model_output, x)  # type: ignore[attr-defined]

    def model_input(self, x, sigma):
        return self.calculate_input(sigma, x)  # type: ignore[attr-defined]

    def input_at(self, x, sigma: float):
        return self.calculate_input(sigma, x)  # type: ignore[attr-defined]


class ModelSamplingDiscreteDistilled(ModelSamplingDiscrete):
    """LCM-distilled models: only every ``1000 / original_timesteps``-th training sigma is valid."""

    original_timesteps = 50

    def __init__(self, model_config=None, zsnr=None):
        super().__init__(model_config, zsnr=zsnr)
        self.skip_steps = self.num_timesteps // self.original_timesteps
        valid = torch.stack([self.sigmas[self.num_timesteps - 1 - x * self.skip_steps]
                             for x in reversed(range(self.original_timesteps))])
        self.set_sigmas(valid)

    def timestep(self, sigma: torch.Tensor) -> torch.Tensor:
        index = super().timestep(sigma)
        return index * self.skip_steps + (self.skip_steps - 1)

    def sigma(self, timestep) -> torch.Tensor:
        index = (torch.as_tensor(timestep).float() - (self.skip_steps - 1)) / self.skip_steps
        return super().sigma(index)


class LCM(EPS):
    """Latent consistency models: the denoised sample mixes x0 and the input by boundary
    conditions of the (10x scaled) timestep."""

    def calculate_denoised(self, sigma, model_output, model_input):
        shape = sigma.shape[:1] + (1,) * (model_output.ndim - 1)
        timestep = self.timestep(sigma).view(shape)  # type: ignore[attr-defined]
        sigma = sigma.view(shape)
        x0 = model_input - model_output * sigma
        sigma_data, scaled = 0.5, timestep * 10.0
        c_skip = sigma_data ** 2 / (scaled ** 2 + sigma_data ** 2)
        c_out = scaled / (scaled ** 2 + sigma_data ** 2) ** 0.5
        return c_out * x0 + c_skip * model_input
