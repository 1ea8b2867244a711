"""Custom sampling: the nodes that make a SAMPLER (an algorithm with its options).

Each wraps one of the samplers of :mod:`opencomfy.diffusion.samplers` by name; KSamplerSelect
offers every KSampler name. A sampler the library does not implement yet fails here, when the
node runs, with an error that names it.
"""

from __future__ import annotations

from opencomfy.compat.comfy.samplers import SAMPLER_NAMES
from opencomfy.diffusion.sampler_objects import ksampler, sampler_object
from opencomfy.nodes.v3_schema import V3SchemaNode

CUSTOM_SAMPLER = "comfy_extras.nodes_custom_sampler"
SAMPLERS = "sampling/custom_sampling/samplers"


def _free(default: float, high: float = 100.0, low: float = 0.0):
    return ("FLOAT", {"default": default, "min": low, "max": high, "step": 0.01, "round": False})


ETA = _free(1.0)
S_NOISE = _free(1.0)
NOISE_DEVICE = (["gpu", "cpu"],)


class _Sampler:
    RETURN_TYPES = ("SAMPLER",)
    FUNCTION = "get_sampler"
    CATEGORY = SAMPLERS


class KSamplerSelect(_Sampler):
    """Any KSampler sampler by name, with its default options."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"sampler_name": (SAMPLER_NAMES,)}}

    def get_sampler(self, sampler_name):
        return (sampler_object(sampler_name),)


class SamplerEulerAncestral(_Sampler):
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"eta": ETA, "s_noise": S_NOISE}}

    def get_sampler(self, eta, s_noise):
        return (ksampler("euler_ancestral", {"eta": eta, "s_noise": s_noise}),)


class SamplerEulerAncestralCFGPP(_Sampler):
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"eta": _free(1.0, high=1.0), "s_noise": _free(1.0, high=10.0)}}

    def get_sampler(self, eta, s_noise):
        return (ksampler("euler_ancestral_cfg_pp", {"eta": eta, "s_noise": s_noise}),)


class SamplerLMS(_Sampler):
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"order": ("INT", {"default": 4, "min": 1, "max": 100})}}

    def get_sampler(self, order):
        return (ksampler("lms", {"order": order}),)


def _device_variant(name: str, noise_device: str) -> str:
    """The ``_gpu`` variant draws its Brownian noise on the compute device."""
    return name if noise_device == "cpu" else f"{name}_gpu"


class SamplerDPMPP_3M_SDE(_Sampler):
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"eta": ETA, "s_noise": S_NOISE, "noise_device": NOISE_DEVICE}}

    def get_sampler(self, eta, s_noise, noise_device):
        return (ksampler(_device_variant("dpmpp_3m_sde", noise_device), {"eta": eta, "s_noise": s_noise}),)


class SamplerDPMPP_2M_SDE(_Sampler):
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"solver_type": (["midpoint", "heun"],), "eta": ETA, "s_noise": S_NOISE,
                             "noise_device": NOISE_DEVICE}}

    def get_sampler(self, solver_type, eta, s_noise, noise_device):
        options = {"eta": eta, "s_noise": s_noise, "solver_type": solver_type}
        return (ksampler(_device_variant("dpmpp_2m_sde", noise_device), options),)


class SamplerDPMPP_SDE(_Sampler):
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"eta": ETA, "s_noise": S_NOISE, "r": _free(0.5), "noise_device": NOISE_DEVICE}}

    def get_sampler(self, eta, s_noise, r, noise_device):
        options = {"eta": eta, "s_noise": s_noise, "r": r}
        return (ksampler(_device_variant("dpmpp_sde", noise_device), options),)


class SamplerDPMPP_2S_Ancestral(_Sampler):
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"eta": ETA, "s_noise": S_NOISE}}

    def get_sampler(self, eta, s_noise):
        return (ksampler("dpmpp_2s_ancestral", {"eta": eta, "s_noise": s_noise}),)


class SamplerDPMAdaptative(_Sampler):
    """DPM-Solver with adaptive step size: its own error control decides the steps."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "order": ("INT", {"default": 3, "min": 2, "max": 3}),
            "rtol": _free(0.05), "atol": _free(0.0078), "h_init": _free(0.05),
            "pcoeff": _free(0.0), "icoeff": _free(1.0), "dcoeff": _free(0.0),
            "accept_safety": _free(0.81), "eta": _free(0.0), "s_noise": S_NOISE,
        }}

    def get_sampler(self, **options):
        return (ksampler("dpm_adaptive", options),)


class SamplerER_SDE(_Sampler):
    """ER-SDE (extended reverse-time SDE) solver, or its reverse-time SDE / ODE special cases."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "solver_type": ("COMBO", {"options": ["ER-SDE", "Reverse-time SDE", "ODE"]}),
            "max_stage": ("INT", {"default": 3, "min": 1, "max": 3}),
            "eta": ("FLOAT", {
                "default": 1.0, "min": 0.0, "max": 100.0, "step": 0.01, "round": False,
                "tooltip": "How stochastic the reverse-time SDE is; 0 makes it the ODE. The "
                           "ER-SDE solver type ignores it."}),
            "s_noise": S_NOISE,
        }}

    def get_sampler(self, solver_type, max_stage, eta, s_noise):
        if solver_type not in ("ER-SDE", "Reverse-time SDE", "ODE"):
            raise ValueError(f"unknown ER-SDE solver type {solver_type!r}")
        if solver_type == "ODE" or (solver_type == "Reverse-time SDE" and eta == 0):
            eta, s_noise = 0.0, 0.0
        # ER-SDE keeps the sampler's own noise scaling; the others scale by x ** (eta + 1).
        noise_scaler = None if solver_type == "ER-SDE" else _power(eta + 1)
        return (ksampler("er_sde", {"s_noise": s_noise, "noise_scaler": noise_scaler,
                                    "max_stage": max_stage}),)


def _power(exponent: float):
    def scale(x):
        return x ** exponent

    return scale


def tau_interval(start_sigma: float, end_sigma: float, eta: float):
    """SA-Solver's stochasticity: ``eta`` for sigmas in [end_sigma, start_sigma], else 0."""
    def tau(sigma) -> float:
        return eta if end_sigma <= float(sigma) <= start_sigma else 0.0

    return tau


class SamplerSASolver(_Sampler):
    """SA-Solver: stochastic Adams predictor-corrector, stochastic only over a range of steps."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MODEL", {}),
            "eta": _free(1.0, high=10.0),
            "sde_start_percent": ("FLOAT", {"default": 0.2, "min": 0.0, "max": 1.0, "step": 0.001}),
            "sde_end_percent": ("FLOAT", {"default": 0.8, "min": 0.0, "max": 1.0, "step": 0.001}),
            "s_noise": S_NOISE,
            "predictor_order": ("INT", {"default": 3, "min": 1, "max": 6}),
            "corrector_order": ("INT", {"default": 4, "min": 0, "max": 6}),
            "use_pece": ("BOOLEAN", {}),
            "simple_order_2": ("BOOLEAN", {}),
        }}

    def get_sampler(self, model, eta, sde_start_percent, sde_end_percent, s_noise, predictor_order,
                    corrector_order, use_pece, simple_order_2):
        schedule = model.schedule
        tau = tau_interval(schedule.percent_to_sigma(sde_start_percent),
                           schedule.percent_to_sigma(sde_end_percent), eta)
        return (ksampler("sa_solver", {"tau_func": tau, "s_noise": s_noise,
                                       "predictor_order": predictor_order,
                                       "corrector_order": corrector_order, "use_pece": use_pece,
                                       "simple_order_2": simple_order_2}),)


class SamplerSEEDS2(V3SchemaNode):
    """SEEDS-2 (exponential SDE solver); phi_2 with r 1 gives the exponential Heun samplers."""

    NODE_ID = "SamplerSEEDS2"
    CATEGORY = SAMPLERS
    RELATIVE_PYTHON_MODULE = CUSTOM_SAMPLER
    RETURN_TYPES = ("SAMPLER",)
    DESCRIPTION = ("One node for several samplers: seeds_2 with the defaults; exp_heun_2_x0 with "
                   "solver_type phi_2, r 1 and eta 0; exp_heun_2_x0_sde with phi_2, r 1, eta 1.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "solver_type": ("COMBO", {"multiselect": False, "options": ["phi_1", "phi_2"]}),
            "eta": _free(1.0), "s_noise": S_NOISE,
            "r": ("FLOAT", {"default": 0.5, "min": 0.01, "max": 1.0, "step": 0.01, "round": False}),
        }}

    def execute(self, solver_type, eta, s_noise, r):
        return (ksampler("seeds_2", {"eta": eta, "s_noise": s_noise, "r": r, "solver_type": solver_type}),)


_V1 = [KSamplerSelect, SamplerEulerAncestral, SamplerEulerAncestralCFGPP, SamplerLMS, SamplerDPMPP_3M_SDE,
       SamplerDPMPP_2M_SDE, SamplerDPMPP_SDE, SamplerDPMPP_2S_Ancestral, SamplerDPMAdaptative,
       SamplerER_SDE, SamplerSASolver]
DISPLAY_NAMES = {"SamplerEulerAncestralCFGPP": "SamplerEulerAncestralCFG++"}

NODES = [
    *[(cls.__name__, cls, DISPLAY_NAMES.get(cls.__name__, cls.__name__), CUSTOM_SAMPLER) for cls in _V1],
    (SamplerSEEDS2.NODE_ID, SamplerSEEDS2, SamplerSEEDS2.DISPLAY_NAME, CUSTOM_SAMPLER),
]
