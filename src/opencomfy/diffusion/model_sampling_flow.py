"""Sigma schedules and prediction types beyond the discrete DDPM one (the ModelSampling* nodes).

A *model sampling* object says how sigmas map to the model's timestep input, how the model's
input is scaled and how its output becomes the denoised sample. It has two faces:

- ComfyUI's (``calculate_input``, ``calculate_denoised``, ``noise_scaling``,
  ``inverse_noise_scaling``, ``timestep``, ``sigma``, ``percent_to_sigma``, ``sigmas``,
  ``sigma_min``/``sigma_max``, ``sigma_data``), which custom nodes call;
- the one our schedulers and samplers call (:class:`DiscreteSchedule`'s: ``timestep_of``,
  ``denoised``/``denoised_at``, ``model_input``/``input_at``, ``prediction_type``).

A class is a schedule (discrete, continuous EDM/V, flow with a shift, Flux, Stable Cascade)
combined with a prediction type (EPS, V_PREDICTION, EDM, CONST, X0, IMG_TO_IMG, COSMOS_RFLOW),
as in ComfyUI's ``comfy.model_sampling``: ``sampling_class(ModelSamplingDiscreteFlow, CONST)``.
They apply to any model: the families that need them come with other issues.
"""

from __future__ import annotations

import math

import torch

# comfy.model_base's ModelType is defined torch-free beside the compat placeholders: one enum.
from opencomfy.compat.model_placeholders import ModelType
from opencomfy.diffusion.model_sampling import DiscreteSchedule


def _view(sigma, like: torch.Tensor):
    """``sigma`` (a float or a [B] tensor) shaped to broadcast over ``like``."""
    if not torch.is_tensor(sigma):
        return float(sigma)
    sigma = sigma.to(like.device, like.dtype if like.is_floating_point() else torch.float32)
    if sigma.ndim == 0:
        return sigma
    return sigma.reshape(sigma.shape[:1] + (1,) * (like.ndim - 1))


# --- prediction types: what the model outputs --------------------------------------------------

class EPS:
    """The model predicts the noise; its input is the sample scaled to unit variance."""

    sigma_data = 1.0
    prediction_type = "epsilon"

    def calculate_input(self, sigma, noise):
        return noise / (_view(sigma, noise) ** 2 + self.sigma_data ** 2) ** 0.5

    def calculate_denoised(self, sigma, model_output, model_input):
        return model_input - model_output * _view(sigma, model_output)

    def noise_scaling(self, sigma, noise, latent_image, max_denoise=False):
        sigma = _view(sigma, noise)
        scale = (1.0 + sigma ** 2.0) ** 0.5 if max_denoise else sigma
        return noise * scale + latent_image

    def inverse_noise_scaling(self, sigma, latent):
        return latent


class V_PREDICTION(EPS):
    """The model predicts v (Salimans & Ho 2022)."""

    prediction_type = "v_prediction"

    def calculate_denoised(self, sigma, model_output, model_input):
        s, d = _view(sigma, model_output), self.sigma_data
        return model_input * d ** 2 / (s ** 2 + d ** 2) - model_output * s * d / (s ** 2 + d ** 2) ** 0.5


class EDM(V_PREDICTION):
    """Karras et al.'s preconditioning (the output's sign is the opposite of v's)."""

    prediction_type = "edm"

    def calculate_denoised(self, sigma, model_output, model_input):
        s, d = _view(sigma, model_output), self.sigma_data
        return model_input * d ** 2 / (s ** 2 + d ** 2) + model_output * s * d / (s ** 2 + d ** 2) ** 0.5


class X0(EPS):
    """The model predicts the denoised sample itself."""

    prediction_type = "x0"

    def calculate_denoised(self, sigma, model_output, model_input):
        return model_output


class IMG_TO_IMG(X0):
    """X0 prediction from the unscaled sample."""

    prediction_type = "img_to_img"

    def calculate_input(self, sigma, noise):
        return noise


class CONST:
    """Rectified flow: ``x = (1 - sigma) * x0 + sigma * noise``; the model predicts the velocity."""

    sigma_data = 1.0
    prediction_type = "flow"

    def calculate_input(self, sigma, noise):
        return noise

    def calculate_denoised(self, sigma, model_output, model_input):
        return model_input - model_output * _view(sigma, model_output)

    def noise_scaling(self, sigma, noise, latent_image, max_denoise=False):
        sigma = _view(sigma, noise)
        return sigma * noise + (1.0 - sigma) * latent_image

    def inverse_noise_scaling(self, sigma, latent):
        return latent / (1.0 - _view(sigma, latent))


class COSMOS_RFLOW:
    """Rectified flow written in EDM sigmas: flow time ``t = sigma / (1 + sigma)``."""

    sigma_data = 1.0
    prediction_type = "cosmos_rflow"

    def calculate_input(self, sigma, noise):
        t = _view(sigma, noise)
        t = t / (t + 1.0)
        return noise * (1.0 - t)

    def calculate_denoised(self, sigma, model_output, model_input):
        t = _view(sigma, model_output)
        t = t / (t + 1.0)
        return model_input * (1.0 - t) - model_output * t

    def noise_scaling(self, sigma, noise, latent_image, max_denoise=False):
        return noise * _view(sigma, noise) + latent_image

    def inverse_noise_scaling(self, sigma, latent):
        return latent


# --- schedules: how sigmas map to timesteps ----------------------------------------------------

class _Schedule:
    """What every schedule shares: the table of sigmas and our samplers' float helpers."""

    sigmas: torch.Tensor

    def timestep(self, sigma):
        raise NotImplementedError

    def set_sigmas(self, sigmas: torch.Tensor) -> None:
        self.sigmas = sigmas.float()
        self.log_sigmas = self.sigmas.log()

    @property
    def sigma_min(self) -> float:
        return float(self.sigmas[0])

    @property
    def sigma_max(self) -> float:
        return float(self.sigmas[-1])

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

    def __repr__(self) -> str:
        return f"<{type(self).__name__} sigma {self.sigma_min:.4g}..{self.sigma_max:.4g}>"


class ModelSamplingContinuousEDM(_Schedule):
    """Log-uniform sigmas between ``sigma_min`` and ``sigma_max``; timestep ``log(sigma) / 4``."""

    def __init__(self, sigma_min: float = 0.002, sigma_max: float = 120.0, sigma_data: float = 1.0):
        self.set_parameters(sigma_min, sigma_max, sigma_data)

    def set_parameters(self, sigma_min: float, sigma_max: float, sigma_data: float) -> None:
        if not 0 < sigma_min < sigma_max:
            raise ValueError(f"sigma_min ({sigma_min}) must be above 0 and below sigma_max ({sigma_max})")
        self.sigma_data = sigma_data
        self.set_sigmas(torch.linspace(math.log(sigma_min), math.log(sigma_max), 1000).exp())

    def timestep(self, sigma):
        return 0.25 * torch.as_tensor(sigma).log()

    def sigma(self, timestep):
        return (torch.as_tensor(timestep) / 0.25).exp()

    def percent_to_sigma(self, percent: float) -> float:
        if percent <= 0.0:
            return 999999999.9
        if percent >= 1.0:
            return 0.0
        low = math.log(self.sigma_min)
        return math.exp((math.log(self.sigma_max) - low) * (1.0 - percent) + low)


class ModelSamplingContinuousV(ModelSamplingContinuousEDM):
    """Log-uniform sigmas; timestep ``atan(sigma) * 2 / pi`` (continuous v models)."""

    def timestep(self, sigma):
        return torch.as_tensor(sigma).atan() / math.pi * 2

    def sigma(self, timestep):
        return (torch.as_tensor(timestep) * math.pi / 2).tan()


def time_snr_shift(alpha: float, t):
    """Flow time ``t`` shifted towards noise by ``alpha`` (SD3's resolution shift)."""
    if alpha == 1.0:
        return t
    return alpha * t / (1 + (alpha - 1) * t)


def flux_time_shift(mu: float, sigma: float, t):
    """Flux's exponential time shift."""
    return math.exp(mu) / (math.exp(mu) + (1 / t - 1) ** sigma)


class ModelSamplingDiscreteFlow(_Schedule):
    """Flow time in (0, 1] with a shift; the model sees ``sigma * multiplier`` as its timestep."""

    def __init__(self, shift: float = 1.0, multiplier: float = 1000, timesteps: int = 1000):
        self.set_parameters(shift=shift, timesteps=timesteps, multiplier=multiplier)

    def set_parameters(self, shift: float = 1.0, timesteps: int = 1000, multiplier: float = 1000) -> None:
        self.shift, self.multiplier = shift, multiplier
        self.set_sigmas(self.sigma((torch.arange(1, timesteps + 1, 1) / timesteps) * multiplier))

    def timestep(self, sigma):
        return torch.as_tensor(sigma) * self.multiplier

    def sigma(self, timestep):
        return time_snr_shift(self.shift, torch.as_tensor(timestep) / self.multiplier)

    def percent_to_sigma(self, percent: float) -> float:
        if percent <= 0.0:
            return 1.0
        if percent >= 1.0:
            return 0.0
        return float(time_snr_shift(self.shift, 1.0 - percent))


class ModelSamplingFlux(_Schedule):
    """Flow time with Flux's exponential shift; the timestep is the sigma itself."""

    def __init__(self, shift: float = 1.15, timesteps: int = 10000):
        self.set_parameters(shift=shift, timesteps=timesteps)

    def set_parameters(self, shift: float = 1.15, timesteps: int = 10000) -> None:
        self.shift = shift
        self.set_sigmas(self.sigma(torch.arange(1, timesteps + 1, 1) / timesteps))

    def timestep(self, sigma):
        return torch.as_tensor(sigma)

    def sigma(self, timestep):
        return flux_time_shift(self.shift, 1.0, torch.as_tensor(timestep))

    def percent_to_sigma(self, percent: float) -> float:
        if percent <= 0.0:
            return 1.0
        if percent >= 1.0:
            return 0.0
        return float(flux_time_shift(self.shift, 1.0, 1.0 - percent))


class ModelSamplingStableCascade(_Schedule):
    """Stable Cascade's cosine schedule over continuous time in [0, 1], with a log-SNR shift."""

    def __init__(self, shift: float = 1.0, cosine_s: float = 8e-3):
        self.set_parameters(shift, cosine_s)

    def set_parameters(self, shift: float = 1.0, cosine_s: float = 8e-3) -> None:
        self.shift = shift
        self.cosine_s = torch.tensor(cosine_s)
        self._init_alpha_cumprod = torch.cos(self.cosine_s / (1 + self.cosine_s) * torch.pi * 0.5) ** 2
        steps = 10000
        self.set_sigmas(self.sigma((torch.arange(steps, dtype=torch.float32) + 1) / steps))

    def sigma(self, timestep):
        t = torch.as_tensor(timestep, dtype=torch.float32)
        alpha_cumprod = torch.cos((t + self.cosine_s) / (1 + self.cosine_s) * torch.pi * 0.5) ** 2 \
            / self._init_alpha_cumprod
        if self.shift != 1.0:
            log_snr = (alpha_cumprod / (1 - alpha_cumprod)).log() + 2 * math.log(1.0 / self.shift)
            alpha_cumprod = log_snr.sigmoid()
        alpha_cumprod = alpha_cumprod.clamp(0.0001, 0.9999)
        return ((1 - alpha_cumprod) / alpha_cumprod) ** 0.5

    def timestep(self, sigma):
        # As ComfyUI: the inverse of the unshifted cosine schedule.
        sigma = torch.as_tensor(sigma, dtype=torch.float32)
        var = (1 / (sigma * sigma + 1)).clamp(0, 1.0)
        s, min_var = self.cosine_s, self._init_alpha_cumprod
        return (((var * min_var) ** 0.5).acos() / (torch.pi * 0.5)) * (1 + s) - s

    def percent_to_sigma(self, percent: float) -> float:
        if percent <= 0.0:
            return 999999999.9
        if percent >= 1.0:
            return 0.0
        return float(self.sigma(torch.tensor(1.0 - percent)))


class ModelSamplingCosmosRFlow(ModelSamplingContinuousEDM):
    """EDM sigmas whose model timestep is the flow time ``sigma / (1 + sigma)``."""

    def timestep(self, sigma):
        sigma = torch.as_tensor(sigma)
        return sigma / (sigma + 1)

    def sigma(self, timestep):
        t = torch.as_tensor(timestep).clamp(max=self.sigma_max / (self.sigma_max + 1))
        return t / (1 - t)


# --- the discrete schedule with ComfyUI's method names ------------------------------------------

class DiscreteModelSampling(DiscreteSchedule):
    """:class:`DiscreteSchedule` (SD 1.x/2.x/XL) with ComfyUI's model-sampling methods as well."""

    sigma_data = 1.0

    def calculate_input(self, sigma, noise):
        return noise / (_view(sigma, noise) ** 2 + 1.0) ** 0.5

    def calculate_denoised(self, sigma, model_output, model_input):
        if not torch.is_tensor(sigma):
            return self.denoised_at(model_input, float(sigma), model_output)
        return self.denoised(model_input, sigma.reshape(-1).to(model_input.device), model_output)

    def noise_scaling(self, sigma, noise, latent_image, max_denoise=False):  # type: ignore[override]
        return super().noise_scaling(sigma, noise, latent_image, max_denoise=max_denoise)

    def inverse_noise_scaling(self, sigma, latent):
        return latent

    def input_at(self, x, sigma: float):
        # Scaled by a Python float, as the samplers always did (bit-for-bit the same results).
        return x * (1.0 / (sigma ** 2 + 1.0) ** 0.5)


def as_model_sampling(schedule):
    """A schedule with both faces: a plain :class:`DiscreteSchedule` is upgraded (same state)."""
    if type(schedule) is DiscreteSchedule:
        upgraded = DiscreteModelSampling.__new__(DiscreteModelSampling)
        upgraded.__dict__.update(schedule.__dict__)
        return upgraded
    return schedule


def sampling_class(schedule_type: type, prediction_type: type) -> type:
    """A model-sampling class combining a schedule and a prediction type (ComfyUI builds these
    as local ``ModelSamplingAdvanced`` classes)."""
    name = f"{schedule_type.__name__}_{prediction_type.__name__}"
    return type(name, (schedule_type, prediction_type), {})


def model_type_of(sampling) -> ModelType:
    """The :class:`ModelType` a model-sampling object implies."""
    if isinstance(sampling, (CONST,)):
        return ModelType.FLUX if isinstance(sampling, ModelSamplingFlux) else ModelType.FLOW
    if isinstance(sampling, COSMOS_RFLOW):
        return ModelType.FLOW_COSMOS
    if isinstance(sampling, ModelSamplingStableCascade):
        return ModelType.STABLE_CASCADE
    if isinstance(sampling, IMG_TO_IMG):
        return ModelType.IMG_TO_IMG
    if isinstance(sampling, EDM):
        return ModelType.EDM
    if isinstance(sampling, V_PREDICTION):
        return (ModelType.V_PREDICTION_CONTINUOUS if isinstance(sampling, ModelSamplingContinuousV)
                else ModelType.V_PREDICTION_EDM if isinstance(sampling, ModelSamplingContinuousEDM)
                else ModelType.V_PREDICTION)
    if getattr(sampling, "prediction_type", "epsilon") == "v_prediction":
        return ModelType.V_PREDICTION
    return ModelType.EPS
