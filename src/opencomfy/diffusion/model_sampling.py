"""The noise schedule of a discrete-time (DDPM-trained) model, in sigmas.

SD 1.x was trained with 1000 timesteps and ``scaled_linear`` betas. Samplers work on sigmas
(``x = x0 + sigma * eps``); the UNet wants a timestep: as ComfyUI does, it gets the training
timestep whose sigma is nearest in ``log sigma`` (an integer), while the way back from a
(fractional) timestep to a sigma interpolates ``log sigma`` (schedulers, percentages).
The UNet predicts either the noise (``epsilon``) or ``v`` (SD 2.x 768 models and some
fine-tunes); ``zsnr`` rescales the schedule to zero terminal SNR.
"""

from __future__ import annotations

import bisect
from functools import lru_cache

import torch


class DiscreteSchedule:
    """Training sigmas and the sigma <-> timestep maps for an epsilon-predicting model."""

    def __init__(self, *, beta_start: float = 0.00085, beta_end: float = 0.012,
                 beta_schedule: str = "scaled_linear", num_train_timesteps: int = 1000,
                 prediction_type: str = "epsilon", zsnr: bool = False):
        if beta_schedule == "scaled_linear":
            betas = torch.linspace(beta_start ** 0.5, beta_end ** 0.5, num_train_timesteps,
                                   dtype=torch.float64) ** 2
        elif beta_schedule == "linear":
            betas = torch.linspace(beta_start, beta_end, num_train_timesteps, dtype=torch.float64)
        else:
            raise ValueError(f"unsupported beta schedule {beta_schedule!r}")
        if prediction_type not in ("epsilon", "v_prediction"):
            raise ValueError(f"unsupported prediction type {prediction_type!r}")
        alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
        if zsnr:
            alphas_cumprod = _zero_terminal_snr(alphas_cumprod)
        self.prediction_type = prediction_type
        self.zsnr = zsnr
        self.config = {"beta_start": beta_start, "beta_end": beta_end, "beta_schedule": beta_schedule,
                       "num_train_timesteps": num_train_timesteps}
        self.sigmas = (((1 - alphas_cumprod) / alphas_cumprod) ** 0.5).float()
        self.log_sigmas = self.sigmas.log()
        self._log_sigma_list = tuple(self.log_sigmas.tolist())

    @classmethod
    def from_config(cls, config: dict) -> "DiscreteSchedule":
        return cls(beta_start=config["beta_start"], beta_end=config["beta_end"],
                   beta_schedule=config["beta_schedule"],
                   num_train_timesteps=config["num_train_timesteps"],
                   prediction_type=config.get("prediction_type", "epsilon"),
                   zsnr=config.get("rescale_betas_zero_snr", False))

    def with_prediction(self, prediction_type: str, *, zsnr: bool = False) -> "DiscreteSchedule":
        """The same training schedule with another prediction type (ModelSamplingDiscrete)."""
        return DiscreteSchedule(**self.config, prediction_type=prediction_type, zsnr=zsnr)

    @property
    def sigma_min(self) -> float:
        return float(self.sigmas[0])

    @property
    def sigma_max(self) -> float:
        return float(self.sigmas[-1])

    def timestep(self, sigma: torch.Tensor) -> torch.Tensor:
        """The training timestep nearest to each sigma in log sigma (as a float tensor).

        The UNet only saw integer timesteps in training and ComfyUI feeds it the nearest one,
        so a sigma between two training sigmas is rounded, not interpolated.
        """
        log_sigma = sigma.float().log().reshape(1, -1)
        dists = log_sigma - self.log_sigmas.to(sigma.device).reshape(-1, 1)
        return dists.abs().argmin(dim=0).reshape(sigma.shape).float()

    def timestep_of(self, sigma: float) -> float:
        """:meth:`timestep` for one Python float (cached: samplers ask for few distinct sigmas)."""
        return _timestep_of(self._log_sigma_list, sigma)

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
        """x0 from the UNet's prediction (epsilon or v)."""
        sigma = sigma.reshape(sigma.shape[:1] + (1,) * (x.ndim - 1))
        if self.prediction_type == "v_prediction":
            return x / (sigma ** 2 + 1.0) - model_output * sigma / (sigma ** 2 + 1.0) ** 0.5
        return x - model_output * sigma

    def denoised_at(self, x, sigma: float, model_output):
        """:meth:`denoised` for one sigma given as a Python float."""
        if self.prediction_type == "v_prediction":
            return x / (sigma ** 2 + 1.0) - model_output * (sigma / (sigma ** 2 + 1.0) ** 0.5)
        return x - model_output * sigma

    def model_input(self, x, sigma):
        """The UNet sees the sample scaled back to unit variance."""
        sigma = sigma.reshape(sigma.shape[:1] + (1,) * (x.ndim - 1))
        return x / (sigma ** 2 + 1.0) ** 0.5


def _zero_terminal_snr(alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """Shift and scale sqrt(alphas_cumprod) so the last step is pure noise (Lin et al. 2023).

    The last value is then set just above zero so that its sigma stays finite.
    """
    root = alphas_cumprod.sqrt()
    first, last = root[0].clone(), root[-1].clone()
    root = (root - last) * first / (first - last)
    out = root ** 2
    out[-1] = 4.8973451890853435e-08
    return out


@lru_cache(maxsize=4096)
def _timestep_of(log_sigmas: tuple[float, ...], sigma: float) -> float:
    # In float32, as the tensor version computes it, so that ties break the same way.
    log_sigma = float(torch.tensor(sigma, dtype=torch.float32).log())
    high = min(max(bisect.bisect_right(log_sigmas, log_sigma), 1), len(log_sigmas) - 1)
    low = high - 1
    nearest = low if abs(log_sigma - log_sigmas[low]) <= abs(log_sigma - log_sigmas[high]) else high
    return float(nearest)
