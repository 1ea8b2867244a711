"""ComfyUI's ``comfy.samplers`` as far as packs read it at import time: the sampler and
scheduler names (for their combo inputs). Sampling itself needs a diffusion model, which
opencomfy's core does not provide."""

from __future__ import annotations

from opencomfy.compat.model_placeholders import module_getattr

KSAMPLER_NAMES = [
    "euler", "euler_cfg_pp", "euler_ancestral", "euler_ancestral_cfg_pp", "heun", "heunpp2",
    "dpm_2", "dpm_2_ancestral", "lms", "dpm_fast", "dpm_adaptive", "dpmpp_2s_ancestral",
    "dpmpp_2s_ancestral_cfg_pp", "dpmpp_sde", "dpmpp_sde_gpu", "dpmpp_2m", "dpmpp_2m_cfg_pp",
    "dpmpp_2m_sde", "dpmpp_2m_sde_gpu", "dpmpp_2m_sde_heun", "dpmpp_2m_sde_heun_gpu",
    "dpmpp_3m_sde", "dpmpp_3m_sde_gpu", "ddpm", "lcm", "ipndm", "ipndm_v", "deis",
    "res_multistep", "res_multistep_cfg_pp", "res_multistep_ancestral",
    "res_multistep_ancestral_cfg_pp", "gradient_estimation", "gradient_estimation_cfg_pp",
    "er_sde", "seeds_2", "seeds_3", "sa_solver", "sa_solver_pece",
]
SAMPLER_NAMES = KSAMPLER_NAMES + ["ddim", "uni_pc", "uni_pc_bh2"]
SCHEDULER_NAMES = ["simple", "sgm_uniform", "karras", "exponential", "ddim_uniform", "beta",
                   "normal", "linear_quadratic", "kl_optimal"]


class KSampler:
    """Only the name lists; constructing one needs a model."""

    SCHEDULERS = SCHEDULER_NAMES
    SAMPLERS = SAMPLER_NAMES
    DISCARD_PENULTIMATE_SIGMA_SAMPLERS = {"dpm_2", "dpm_2_ancestral", "uni_pc", "uni_pc_bh2"}

    def __init__(self, *args, **kwargs) -> None:
        raise NotImplementedError("sampling needs a diffusion model, which opencomfy does not provide")

    def sample(self, *args, **kwargs):
        raise NotImplementedError("comfy.samplers.KSampler.sample is not available yet")


# ComfyUI's other names here import (packs read them at import time) and fail, naming
# themselves, when used: the sampling pass replaces them with the real ones.
_PENDING = frozenset({
    "sampler_object", "Sampler", "CFGGuider", "KSAMPLER", "KSamplerX0Inpaint", "CFGNoisePredictor",
    "calculate_sigmas", "can_concat_cond", "cond_cat", "get_area_and_mult", "k_diffusion_sampling",
    "process_conds", "sample", "sampling_function", "calc_cond_batch", "cfg_function", "ksampler",
    "encode_model_conds", "resolve_areas_and_cond_masks", "resolve_areas_and_cond_masks_multidim",
    "calculate_start_end_timesteps", "pre_run_control", "apply_empty_x_to_equal_area",
    "SchedulerHandler", "SCHEDULER_HANDLERS", "normal_scheduler", "simple_scheduler",
    "ddim_scheduler", "beta_scheduler", "linear_quadratic_schedule", "kl_optimal_scheduler",
    "UNIPC", "UNIPCBH2", "get_mask_aabb", "finalize_default_conds", "cast_to_load_options",
})

__getattr__ = module_getattr("comfy.samplers", _PENDING, "not implemented in opencomfy yet")
