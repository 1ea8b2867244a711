"""MODEL patches that replace the noise schedule or the compute dtype (ComfyUI's
``ModelSampling*`` and ``ModelComputeDtype`` nodes).

The new schedule is an object patch (``model_sampling``) of the clone: the schedulers, the
samplers and the UNet call all read it from the MODEL, so it applies to any model. See
:mod:`opencomfy.diffusion.model_sampling_flow` for the schedules themselves.
"""

from __future__ import annotations

_MODEL_ADVANCED = "comfy_extras.nodes_model_advanced"


class _Sampling:
    RETURN_TYPES = ("MODEL",)
    FUNCTION = "patch"
    CATEGORY = "advanced/model"

    @staticmethod
    def _with_sampling(model, sampling, latent_format=None):
        m = model.clone()
        m.add_object_patch("model_sampling", sampling)
        if latent_format is not None:
            m.add_object_patch("latent_format", latent_format)
        return (m,)


def _flow(schedule_type, **parameters):
    from opencomfy.diffusion import model_sampling_flow as msf

    return msf.sampling_class(schedule_type, msf.CONST)(**parameters)


class ModelSamplingSD3(_Sampling):
    """Rectified-flow sampling with SD3's timestep shift (larger shift: more steps at high noise)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",),
                             "shift": ("FLOAT", {"default": 3.0, "min": 0.0, "max": 100.0, "step": 0.01})}}

    def patch(self, model, shift, multiplier: float = 1000):
        from opencomfy.diffusion.model_sampling_flow import ModelSamplingDiscreteFlow

        return self._with_sampling(model, _flow(ModelSamplingDiscreteFlow, shift=shift, multiplier=multiplier))


class ModelSamplingAuraFlow(ModelSamplingSD3):
    """SD3's shifted flow schedule with the timestep in 0..1 (AuraFlow, Lumina)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",),
                             "shift": ("FLOAT", {"default": 1.73, "min": 0.0, "max": 100.0, "step": 0.01})}}

    FUNCTION = "patch_aura"

    def patch_aura(self, model, shift):
        return self.patch(model, shift, multiplier=1.0)


def _resolution_shift(tokens: float, base_shift: float, max_shift: float, low: float, high: float) -> float:
    """The shift interpolated linearly in the token count: ``base_shift`` at ``low`` tokens,
    ``max_shift`` at ``high``."""
    slope = (max_shift - base_shift) / (high - low)
    return tokens * slope + (base_shift - slope * low)


class ModelSamplingFlux(_Sampling):
    """Flux's flow schedule, shifted by image size (256 to 4096 image tokens)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MODEL",),
            "max_shift": ("FLOAT", {"default": 1.15, "min": 0.0, "max": 100.0, "step": 0.01}),
            "base_shift": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 100.0, "step": 0.01}),
            "width": ("INT", {"default": 1024, "min": 16, "max": 16384, "step": 8}),
            "height": ("INT", {"default": 1024, "min": 16, "max": 16384, "step": 8}),
        }}

    def patch(self, model, max_shift, base_shift, width, height):
        from opencomfy.diffusion.model_sampling_flow import ModelSamplingFlux as Schedule

        # One image token per 2x2 latent patch of an 8x-downscaled image.
        shift = _resolution_shift(width * height / (8 * 8 * 2 * 2), base_shift, max_shift, 256, 4096)
        return self._with_sampling(model, _flow(Schedule, shift=shift))


class ModelSamplingLTXV(_Sampling):
    """LTX-Video's flow schedule, shifted by the latent's token count (1024 to 4096 tokens)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MODEL", {}),
            "max_shift": ("FLOAT", {"default": 2.05, "min": 0.0, "max": 100.0, "step": 0.01}),
            "base_shift": ("FLOAT", {"default": 0.95, "min": 0.0, "max": 100.0, "step": 0.01}),
        }, "optional": {"latent": ("LATENT", {})}}

    def patch(self, model, max_shift, base_shift, latent=None):
        from opencomfy.diffusion.model_sampling_flow import ModelSamplingFlux as Schedule

        tokens = 4096
        if latent is not None:
            tokens = 1
            for side in latent["samples"].shape[2:]:
                tokens *= int(side)
        shift = _resolution_shift(tokens, base_shift, max_shift, 1024, 4096)
        return self._with_sampling(model, _flow(Schedule, shift=shift))


class ModelSamplingStableCascade(_Sampling):
    """Stable Cascade's cosine schedule with a log-SNR shift."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",),
                             "shift": ("FLOAT", {"default": 2.0, "min": 0.0, "max": 100.0, "step": 0.01})}}

    def patch(self, model, shift):
        from opencomfy.diffusion import model_sampling_flow as msf

        sampling = msf.sampling_class(msf.ModelSamplingStableCascade, msf.EPS)(shift=shift)
        return self._with_sampling(model, sampling)


class ModelSamplingContinuousEDM(_Sampling):
    """A continuous log-uniform sigma range with an EDM-family prediction type."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MODEL",),
            "sampling": (["v_prediction", "edm", "edm_playground_v2.5", "eps", "cosmos_rflow"],),
            "sigma_max": ("FLOAT", {"default": 120.0, "min": 0.0, "max": 1000.0, "step": 0.001, "round": False}),
            "sigma_min": ("FLOAT", {"default": 0.002, "min": 0.0, "max": 1000.0, "step": 0.001, "round": False}),
        }}

    def patch(self, model, sampling, sigma_max, sigma_min):
        from opencomfy.diffusion import model_sampling_flow as msf
        from opencomfy.diffusion.latent_formats import SDXL_Playground_2_5

        schedule, sigma_data, latent_format = msf.ModelSamplingContinuousEDM, 1.0, None
        kinds = {"eps": msf.EPS, "v_prediction": msf.V_PREDICTION, "edm": msf.EDM,
                 "edm_playground_v2.5": msf.EDM, "cosmos_rflow": msf.COSMOS_RFLOW}
        if sampling not in kinds:
            raise ValueError(f"unknown sampling {sampling!r}; expected one of {sorted(kinds)}")
        if sampling in ("edm", "edm_playground_v2.5"):
            sigma_data = 0.5
        if sampling == "edm_playground_v2.5":
            latent_format = SDXL_Playground_2_5()
        if sampling == "cosmos_rflow":
            schedule = msf.ModelSamplingCosmosRFlow
        made = msf.sampling_class(schedule, kinds[sampling])(sigma_min, sigma_max, sigma_data)
        return self._with_sampling(model, made, latent_format)


class ModelSamplingContinuousV(_Sampling):
    """A continuous log-uniform sigma range for v-prediction models with ``atan`` timesteps."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MODEL",),
            "sampling": (["v_prediction"],),
            "sigma_max": ("FLOAT", {"default": 500.0, "min": 0.0, "max": 1000.0, "step": 0.001, "round": False}),
            "sigma_min": ("FLOAT", {"default": 0.03, "min": 0.0, "max": 1000.0, "step": 0.001, "round": False}),
        }}

    def patch(self, model, sampling, sigma_max, sigma_min):
        from opencomfy.diffusion import model_sampling_flow as msf

        if sampling != "v_prediction":
            raise ValueError(f"unknown sampling {sampling!r}; expected 'v_prediction'")
        made = msf.sampling_class(msf.ModelSamplingContinuousV, msf.V_PREDICTION)(sigma_min, sigma_max, 1.0)
        return self._with_sampling(model, made)


class ModelComputeDtype(_Sampling):
    """Run the model's computation in another dtype (weights cast for the run, then restored)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",), "dtype": (["default", "fp32", "fp16", "bf16"],)}}

    CATEGORY = "advanced/debug/model"

    def patch(self, model, dtype):
        import torch

        dtypes = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
        m = model.clone()
        m.set_model_compute_dtype(dtypes.get(dtype))
        return (m,)


NODES = [
    ("ModelSamplingContinuousEDM", ModelSamplingContinuousEDM, "ModelSamplingContinuousEDM", _MODEL_ADVANCED),
    ("ModelSamplingContinuousV", ModelSamplingContinuousV, "ModelSamplingContinuousV", _MODEL_ADVANCED),
    ("ModelSamplingStableCascade", ModelSamplingStableCascade, "ModelSamplingStableCascade", _MODEL_ADVANCED),
    ("ModelSamplingSD3", ModelSamplingSD3, "ModelSamplingSD3", _MODEL_ADVANCED),
    ("ModelSamplingAuraFlow", ModelSamplingAuraFlow, "ModelSamplingAuraFlow", _MODEL_ADVANCED),
    ("ModelSamplingFlux", ModelSamplingFlux, "ModelSamplingFlux", _MODEL_ADVANCED),
    ("ModelSamplingLTXV", ModelSamplingLTXV, None, "comfy_extras.nodes_lt"),
    ("ModelComputeDtype", ModelComputeDtype, "ModelComputeDtype", _MODEL_ADVANCED),
]
