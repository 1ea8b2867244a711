"""Custom sampling: the nodes that make and edit SIGMAS (schedulers and sigma tools).

A SIGMAS value is a 1-D float tensor of noise levels, largest first (see
:mod:`opencomfy.diffusion.sigmas`). ComfyUI keeps these nodes in ``comfy_extras`` modules
(``nodes_custom_sampler``, ``nodes_align_your_steps``, ``nodes_gits``, ``nodes_optimalsteps``).
"""

from __future__ import annotations

from opencomfy.compat.comfy.samplers import SCHEDULER_NAMES
from opencomfy.diffusion import sigma_tables
from opencomfy.diffusion import sigmas as sigma_ops
from opencomfy.nodes.v3_schema import V3SchemaNode

CUSTOM_SAMPLER = "comfy_extras.nodes_custom_sampler"
SCHEDULERS = "sampling/custom_sampling/schedulers"
SIGMA_TOOLS = "sampling/custom_sampling/sigmas"

# ComfyUI's defaults are SD 1.x's largest and smallest training sigmas.
SIGMA_MAX = ("FLOAT", {"default": 14.614642, "min": 0.0, "max": 5000.0, "step": 0.01, "round": False})
SIGMA_MIN = ("FLOAT", {"default": 0.0291675, "min": 0.0, "max": 5000.0, "step": 0.01, "round": False})
STEPS = ("INT", {"default": 20, "min": 1, "max": 10000})
DENOISE = ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01})


def _free(default: float, low: float, high: float, step: float = 0.01):
    return ("FLOAT", {"default": default, "min": low, "max": high, "step": step, "round": False})


class _Sigmas:
    """A node whose one output is SIGMAS."""

    RETURN_TYPES = ("SIGMAS",)
    FUNCTION = "get_sigmas"
    CATEGORY = SCHEDULERS


class BasicScheduler(_Sigmas):
    """A KSampler scheduler over the model's training noise levels; denoise keeps the tail."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",), "scheduler": (SCHEDULER_NAMES,), "steps": STEPS,
                             "denoise": DENOISE}}

    def get_sigmas(self, model, scheduler, steps, denoise):
        return (sigma_ops.scheduler_sigmas(model.schedule, scheduler, steps, denoise),)


class KarrasScheduler(_Sigmas):
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"steps": STEPS, "sigma_max": SIGMA_MAX, "sigma_min": SIGMA_MIN,
                             "rho": _free(7.0, 0.0, 100.0)}}

    def get_sigmas(self, steps, sigma_max, sigma_min, rho):
        if rho <= 0:
            raise ValueError("rho must be above 0")
        return (sigma_ops.karras(steps, sigma_min, sigma_max, rho),)


class ExponentialScheduler(_Sigmas):
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"steps": STEPS, "sigma_max": SIGMA_MAX, "sigma_min": SIGMA_MIN}}

    def get_sigmas(self, steps, sigma_max, sigma_min):
        _positive(sigma_min, sigma_max)
        return (sigma_ops.exponential(steps, sigma_min, sigma_max),)


class PolyexponentialScheduler(_Sigmas):
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"steps": STEPS, "sigma_max": SIGMA_MAX, "sigma_min": SIGMA_MIN,
                             "rho": _free(1.0, 0.0, 100.0)}}

    def get_sigmas(self, steps, sigma_max, sigma_min, rho):
        _positive(sigma_min, sigma_max)
        return (sigma_ops.polyexponential(steps, sigma_min, sigma_max, rho),)


class LaplaceScheduler(_Sigmas):
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"steps": STEPS, "sigma_max": SIGMA_MAX, "sigma_min": SIGMA_MIN,
                             "mu": _free(0.0, -10.0, 10.0, 0.1), "beta": _free(0.5, 0.0, 10.0, 0.1)}}

    def get_sigmas(self, steps, sigma_max, sigma_min, mu, beta):
        return (sigma_ops.laplace(steps, sigma_min, sigma_max, mu, beta),)


class VPScheduler(_Sigmas):
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"steps": STEPS, "beta_d": _free(19.9, 0.0, 5000.0),
                             "beta_min": _free(0.1, 0.0, 5000.0),
                             "eps_s": _free(0.001, 0.0, 1.0, 0.0001)}}

    def get_sigmas(self, steps, beta_d, beta_min, eps_s):
        return (sigma_ops.vp(steps, beta_d, beta_min, eps_s),)


class BetaSamplingScheduler(_Sigmas):
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",), "steps": STEPS, "alpha": _free(0.6, 0.0, 50.0),
                             "beta": _free(0.6, 0.0, 50.0)}}

    def get_sigmas(self, model, steps, alpha, beta):
        return (sigma_ops.beta_schedule(model.schedule, steps, alpha, beta),)


class SDTurboScheduler(_Sigmas):
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",), "steps": ("INT", {"default": 1, "min": 1, "max": 10}),
                             "denoise": ("FLOAT", {"default": 1.0, "min": 0, "max": 1.0, "step": 0.01})}}

    def get_sigmas(self, model, steps, denoise):
        return (sigma_ops.sd_turbo(model.schedule, steps, denoise),)


def _positive(sigma_min: float, sigma_max: float) -> None:
    if sigma_min <= 0 or sigma_max <= 0:
        raise ValueError("sigma_min and sigma_max must be above 0 for a log-spaced schedule")


# -- published tables (V3 nodes) ---------------------------------------------------------------

class _TableScheduler(V3SchemaNode):
    RETURN_TYPES = ("SIGMAS",)
    CATEGORY = SCHEDULERS


class AlignYourStepsScheduler(_TableScheduler):
    """NVIDIA's Align Your Steps schedules (10 steps, stretched log-linearly to others)."""

    NODE_ID = "AlignYourStepsScheduler"
    RELATIVE_PYTHON_MODULE = "comfy_extras.nodes_align_your_steps"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model_type": ("COMBO", {"multiselect": False, "options": list(sigma_tables.AYS_LEVELS)}),
            "steps": ("INT", {"default": 10, "min": 1, "max": 10000}),
            "denoise": DENOISE,
        }}

    def execute(self, model_type, steps, denoise):
        return (sigma_ops.from_table(_table(sigma_tables.AYS_LEVELS, model_type), steps, denoise),)


class GITSScheduler(_TableScheduler):
    """GITS schedules for SD 1.x, chosen by a regularity coefficient."""

    NODE_ID = "GITSScheduler"
    RELATIVE_PYTHON_MODULE = "comfy_extras.nodes_gits"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "coeff": ("FLOAT", {"default": 1.2, "min": 0.8, "max": 1.5, "step": 0.05}),
            "steps": ("INT", {"default": 10, "min": 2, "max": 1000}),
            "denoise": DENOISE,
        }}

    def execute(self, coeff, steps, denoise):
        # Past the table's 20 steps, the 20-step schedule is stretched.
        levels = sigma_tables.gits_levels(coeff, min(steps, sigma_tables.GITS_MAX_TABLE_STEPS))
        return (sigma_ops.from_table(levels, steps, denoise),)


class OptimalStepsScheduler(_TableScheduler):
    """Optimal Steps schedules for flow models (FLUX, Wan, Chroma)."""

    NODE_ID = "OptimalStepsScheduler"
    RELATIVE_PYTHON_MODULE = "comfy_extras.nodes_optimalsteps"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model_type": ("COMBO", {"multiselect": False,
                                     "options": list(sigma_tables.OPTIMAL_STEPS_LEVELS)}),
            "steps": ("INT", {"default": 20, "min": 3, "max": 1000}),
            "denoise": DENOISE,
        }}

    def execute(self, model_type, steps, denoise):
        levels = _table(sigma_tables.OPTIMAL_STEPS_LEVELS, model_type)
        return (sigma_ops.from_table(levels, steps, denoise),)


def _table(tables: dict, name: str):
    try:
        return tables[name]
    except KeyError:
        raise ValueError(f"no schedule for model type {name!r}; expected one of "
                         f"{', '.join(tables)}") from None


class ManualSigmas(V3SchemaNode):
    """SIGMAS typed by hand: every number in the text, in order."""

    NODE_ID = "ManualSigmas"
    CATEGORY = "_for_testing/custom_sampling"
    RELATIVE_PYTHON_MODULE = CUSTOM_SAMPLER
    RETURN_TYPES = ("SIGMAS",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"sigmas": ("STRING", {"default": "1, 0.5", "multiline": False})}}

    @classmethod
    def GET_NODE_INFO_V1(cls):
        return {**super().GET_NODE_INFO_V1(), "experimental": True}

    def execute(self, sigmas):
        return (sigma_ops.parse_manual(sigmas),)


# -- sigma tools -------------------------------------------------------------------------------

class SplitSigmas:
    RETURN_TYPES = ("SIGMAS", "SIGMAS")
    RETURN_NAMES = ("high_sigmas", "low_sigmas")
    FUNCTION = "get_sigmas"
    CATEGORY = SIGMA_TOOLS

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"sigmas": ("SIGMAS",), "step": ("INT", {"default": 0, "min": 0, "max": 10000})}}

    def get_sigmas(self, sigmas, step):
        return sigma_ops.split_at_step(sigmas, step)


class SplitSigmasDenoise:
    RETURN_TYPES = ("SIGMAS", "SIGMAS")
    RETURN_NAMES = ("high_sigmas", "low_sigmas")
    FUNCTION = "get_sigmas"
    CATEGORY = SIGMA_TOOLS

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"sigmas": ("SIGMAS",), "denoise": DENOISE}}

    def get_sigmas(self, sigmas, denoise):
        return sigma_ops.split_at_denoise(sigmas, denoise)


class FlipSigmas(_Sigmas):
    CATEGORY = SIGMA_TOOLS

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"sigmas": ("SIGMAS",)}}

    def get_sigmas(self, sigmas):
        return (sigma_ops.flip(sigmas),)


class SetFirstSigma(_Sigmas):
    CATEGORY = SIGMA_TOOLS
    FUNCTION = "set_first_sigma"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"sigmas": ("SIGMAS",), "sigma": _free(136.0, 0.0, 20000.0, 0.001)}}

    def set_first_sigma(self, sigmas, sigma):
        if len(sigmas) == 0:
            raise ValueError("SetFirstSigma needs at least one sigma")
        return (sigma_ops.set_first(sigmas, sigma),)


class ExtendIntermediateSigmas(_Sigmas):
    CATEGORY = SIGMA_TOOLS
    FUNCTION = "extend"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "sigmas": ("SIGMAS",),
            "steps": ("INT", {"default": 2, "min": 1, "max": 100}),
            "start_at_sigma": _free(-1.0, -1.0, 20000.0),
            "end_at_sigma": _free(12.0, 0.0, 20000.0),
            "spacing": (["linear", "cosine", "sine"],),
        }}

    def extend(self, sigmas, steps, start_at_sigma, end_at_sigma, spacing):
        return (sigma_ops.extend_intermediate(sigmas, steps, start_at_sigma, end_at_sigma, spacing),)


class SamplingPercentToSigma:
    """The model's sigma at a fraction of the way through sampling."""

    RETURN_TYPES = ("FLOAT",)
    RETURN_NAMES = ("sigma_value",)
    FUNCTION = "get_sigma"
    CATEGORY = SIGMA_TOOLS

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MODEL", {}),
            "sampling_percent": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.0001}),
            "return_actual_sigma": ("BOOLEAN", {"default": False, "tooltip": (
                "At 0 and 1, give the model's real largest and smallest sigma instead of the "
                "open-ended values used to test whether a step lies in a range.")}),
        }}

    def get_sigma(self, model, sampling_percent, return_actual_sigma):
        schedule = model.schedule
        value = schedule.percent_to_sigma(sampling_percent)
        if return_actual_sigma and sampling_percent == 0.0:
            value = schedule.sigma_max
        elif return_actual_sigma and sampling_percent == 1.0:
            value = schedule.sigma_min
        return (float(value),)


_V1 = [
    ("BasicScheduler", BasicScheduler), ("KarrasScheduler", KarrasScheduler),
    ("ExponentialScheduler", ExponentialScheduler), ("PolyexponentialScheduler", PolyexponentialScheduler),
    ("LaplaceScheduler", LaplaceScheduler), ("VPScheduler", VPScheduler),
    ("BetaSamplingScheduler", BetaSamplingScheduler), ("SDTurboScheduler", SDTurboScheduler),
    ("SplitSigmas", SplitSigmas), ("SplitSigmasDenoise", SplitSigmasDenoise), ("FlipSigmas", FlipSigmas),
    ("SetFirstSigma", SetFirstSigma), ("ExtendIntermediateSigmas", ExtendIntermediateSigmas),
    ("SamplingPercentToSigma", SamplingPercentToSigma),
]

NODES = [
    *[(name, cls, name, CUSTOM_SAMPLER) for name, cls in _V1],
    *[(cls.NODE_ID, cls, cls.DISPLAY_NAME, cls.RELATIVE_PYTHON_MODULE)
      for cls in (AlignYourStepsScheduler, GITSScheduler, OptimalStepsScheduler, ManualSigmas)],
]
