"""The noise schedule of a discrete-time (DDPM-trained) model, in sigmas.

SD 1.x was trained with 1000 timesteps and ``scaled_linear`` betas. Samplers work on sigmas
(``x = x0 + sigma * eps``); the UNet wants a timestep, which we get by interpolating
``log sigma`` between the training sigmas, as ComfyUI does (fractional timesteps included).
"""

from __future__ import annotations

import torch


class DiscreteSchedule:
    """Training sigmas and the sigma <-> timestep maps for an epsilon-predicting model."""

    def __init__(self, *, beta_start: float = 0.00085, beta_end: float = 0.012,
                 beta_schedule: str = "scaled_linear", num_train_timesteps: int = 1000,
                 prediction_type: str = "epsilon"):
        if beta_schedule == "scaled_linear":
            betas = torch.linspace(beta_start ** 0.5, beta_end ** 0.5, num_train_timesteps,
                                   dtype=torch.float64) ** 2
        elif beta_schedule == "linear":
            betas = torch.linspace(beta_start, beta_end, num_train_timesteps, dtype=torch.float64)
        else:
            raise ValueError(f"unsupported beta schedule {beta_schedule!r}")
        if prediction_type != "epsilon":
            raise ValueError(f"unsupported prediction type {prediction_type!r}")
        alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
        self.prediction_type = prediction_type
        self.sigmas = (((1 - alphas_cumprod) / alphas_cumprod) ** 0.5).float()
        self.log_sigmas = self.sigmas.log()

    @classmethod
    def from_config(cls, config: dict) -> "DiscreteSchedule":
        return cls(beta_start=config["beta_start"], beta_end=config["beta_end"],
                   beta_schedule=config["beta_schedule"],
                   num_train_timesteps=config["num_train_timesteps"],
                   prediction_type=config.get("prediction_type", "epsilon"))

    @property
    def sigma_min(self) -> float:
        return float(self.sigmas[0])

    @property
    def sigma_max(self) -> float:
        return float(self.sigmas[-1])

    def timestep(self, sigma: torch.Tensor) -> torch.Tensor:
        """The fractional training timestep of each sigma (log-sigma interpolation)."""
        log_sigma = sigma.float().log()
        dists = log_sigma.reshape(-1, 1) - self.log_sigmas.to(sigma.device).reshape(1, -1)
        low = dists.ge(0).cumsum(dim=1).argmax(dim=1).clamp(max=self.log_sigmas.shape[0] - 2)
        high = low + 1
        log_sigmas = self.log_sigmas.to(sigma.device)
        lo, hi = log_sigmas[low], log_sigmas[high]
        w = ((lo - log_sigma.reshape(-1)) / (lo - hi)).clamp(0, 1)
        return ((1 - w) * low + w * high).reshape(sigma.shape)

    def sigma(self, timestep: torch.Tensor) -> torch.Tensor:
        """The sigma of a (fractional) timestep."""
        t = torch.as_tensor(timestep, dtype=torch.float32).clamp(0, self.log_sigmas.shape[0] - 1)
        low, high = t.floor().long(), t.ceil().long()
        w = t - low
        log_sigma = (1 - w) * self.log_sigmas[low] + w * self.log_sigmas[high]
        return log_sigma.exp()

    def percent_to_sigma(self, percent: float) -> float:
        """Sigma at a fraction of the way through sampling (0 -> the largest sigma)."""
        if percent <= 0.0:
            return 999999999.9
        if percent >= 1.0:
            return 0.0
        return float(self.sigma(torch.tensor((1.0 - percent) * 999.0)))

    def noise_scaling(self, sigma, noise, latent_image, *, max_denoise: bool):
        """The starting point of sampling: the latent plus noise of the first sigma."""
        scale = (1.0 + sigma ** 2.0) ** 0.5 if max_denoise else sigma
        return noise * scale + latent_image

    def denoised(self, x, sigma, model_output):
        """x0 from the UNet's epsilon prediction."""
        sigma = sigma.reshape(sigma.shape[:1] + (1,) * (x.ndim - 1))
        return x - model_output * sigma

    def model_input(self, x, sigma):
        """The UNet sees the sample scaled back to unit variance."""
        sigma = sigma.reshape(sigma.shape[:1] + (1,) * (x.ndim - 1))
        return x / (sigma ** 2 + 1.0) ** 0.5
