"""ComfyUI's ``comfy.samplers`` over opencomfy's one sampling path.

Everything here ends in :meth:`opencomfy.diffusion.guiders.CFGGuider.sample`, the method the
KSampler and SamplerCustom nodes use, so a pack that samples through these names gets the
image a core node would give for the same settings. The classes packs subclass (``CFGGuider``,
``Sampler``, ``KSAMPLER``) are ours, under ComfyUI's names.

The name lists and :class:`KSampler`'s ``SAMPLERS``/``SCHEDULERS`` are plain data, importable
without torch: packs read them at import time for their combo inputs. The rest is loaded on
first use.

Conventions that differ from ComfyUI, because our MODEL is the patcher itself: a guider's
``inner_model`` (and ``args["model"]`` inside the sampler functions a MODEL patch installs) is
the MODEL, and the conds it holds are resolved :class:`opencomfy.diffusion.conditioning.Cond`
lists. Passing them back into :func:`sampling_function` / :func:`calc_cond_batch`, as packs do,
works.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, NamedTuple

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


# -- schedulers ---------------------------------------------------------------------------------

class SchedulerHandler(NamedTuple):
    """A scheduler: ``handler(model_sampling, steps)`` when ``use_ms``, else
    ``handler(n=steps, sigma_min=..., sigma_max=...)``. Packs register their own in
    :data:`SCHEDULER_HANDLERS` (and append the name to :data:`SCHEDULER_NAMES`)."""

    handler: Callable
    use_ms: bool = True


class _Bounds:
    """The two numbers a scheduler that ignores the training schedule needs."""

    def __init__(self, sigma_min: float, sigma_max: float):
        self.sigma_min, self.sigma_max = float(sigma_min), float(sigma_max)


def _ours(name: str, schedule, steps: int, **options):
    from opencomfy.diffusion import schedulers

    if options:
        return getattr(schedulers, name)(schedule, steps, **options).float()
    return schedulers.SCHEDULERS[name](schedule, steps).float()


def normal_scheduler(model_sampling, steps, sgm=False, floor=False):
    """Timesteps evenly spaced over the training range (``sgm``: SGM's uniform spacing)."""
    if floor:
        raise ValueError("normal_scheduler(floor=True) is not supported")
    return _ours("normal", model_sampling, steps, sgm=bool(sgm))


def simple_scheduler(model_sampling, steps):
    return _ours("simple", model_sampling, steps)


def ddim_scheduler(model_sampling, steps):
    return _ours("ddim_uniform", model_sampling, steps)


def beta_scheduler(model_sampling, steps, alpha=0.6, beta=0.6):
    return _ours("beta", model_sampling, steps, alpha=alpha, beta_=beta)


def linear_quadratic_schedule(model_sampling, steps, threshold_noise=0.025, linear_steps=None):
    return _ours("linear_quadratic", model_sampling, steps, threshold_noise=threshold_noise,
                 linear_steps=linear_steps)


def kl_optimal_scheduler(n, sigma_min, sigma_max):
    return _ours("kl_optimal", _Bounds(sigma_min, sigma_max), n)


def _karras(n, sigma_min, sigma_max):
    return _ours("karras", _Bounds(sigma_min, sigma_max), n)


def _exponential(n, sigma_min, sigma_max):
    return _ours("exponential", _Bounds(sigma_min, sigma_max), n)


def _sgm_uniform(model_sampling, steps):
    return normal_scheduler(model_sampling, steps, sgm=True)


SCHEDULER_HANDLERS: dict[str, SchedulerHandler] = {
    "simple": SchedulerHandler(simple_scheduler),
    "sgm_uniform": SchedulerHandler(_sgm_uniform),
    "karras": SchedulerHandler(_karras, use_ms=False),
    "exponential": SchedulerHandler(_exponential, use_ms=False),
    "ddim_uniform": SchedulerHandler(ddim_scheduler),
    "beta": SchedulerHandler(beta_scheduler),
    "normal": SchedulerHandler(normal_scheduler),
    "linear_quadratic": SchedulerHandler(linear_quadratic_schedule),
    "kl_optimal": SchedulerHandler(kl_optimal_scheduler, use_ms=False),
}


def calculate_sigmas(model_sampling, scheduler_name: str, steps: int):
    """The sigmas of ``steps`` steps of a named scheduler over a model's ``model_sampling``."""
    handler = SCHEDULER_HANDLERS.get(scheduler_name)
    if handler is None:
        raise ValueError(f"unknown scheduler {scheduler_name!r}; known: {', '.join(SCHEDULER_HANDLERS)}")
    if handler.use_ms:
        return handler.handler(model_sampling, steps)
    return handler.handler(n=steps, sigma_min=float(model_sampling.sigma_min),
                           sigma_max=float(model_sampling.sigma_max))


# -- guidance -----------------------------------------------------------------------------------

def sampling_function(model, x, timestep, uncond, cond, cond_scale, model_options=None, seed=None):
    """One guided prediction: the conds evaluated, pre-CFG functions, CFG (or the MODEL's
    ``sampler_cfg_function``), post-CFG functions. Returns the guided denoised sample."""
    from opencomfy.diffusion import guiders

    return guiders.sampling_function(model, x, timestep, uncond, cond, cond_scale,
                                     model_options or {}, seed)[0]


def cfg_function(model, cond_pred, uncond_pred, cond_scale, x, timestep, model_options=None,
                 cond=None, uncond=None):
    """Combine a cond and an uncond prediction (denoised samples) by ``cond_scale``."""
    from opencomfy.diffusion import guiders

    return guiders.cfg_function(model, cond_pred, uncond_pred, cond_scale, x, timestep,
                                model_options or {}, cond=cond, uncond=uncond)


def calc_cond_batch(model, conds, x_in, timestep, model_options=None):
    """The denoised prediction of each resolved cond list (None: zeros) at ``timestep``."""
    from opencomfy.diffusion import guiders

    return guiders.calc_cond_batch(model, list(conds), x_in, timestep, model_options)


def process_conds(model, noise, conds: dict, device=None, latent_image=None, denoise_mask=None,
                  seed=None) -> dict:
    """``{name: CONDITIONING}`` resolved against the latent's size: ``{name: [Cond, ...]}``,
    the form the guider's ``conds`` hold while sampling."""
    from opencomfy.diffusion import conditioning

    like = noise if latent_image is None else latent_image
    height, width = like.shape[-2:]
    return {name: conditioning.resolve(value, schedule=model.schedule, height=height, width=width,
                                       needs_pooled=model.needs_pooled)
            for name, value in conds.items()}


# -- samplers -------------------------------------------------------------------------------------

def _pack_sampler_function(name: str):
    """``comfy.k_diffusion.sampling.sample_<name>`` when a pack added or replaced it."""
    from opencomfy.compat.comfy.k_diffusion import sampling as k_sampling

    return k_sampling.replaced_by_pack(name)


def ksampler(sampler_name: str, extra_options=None, inpaint_options=None):
    """The SAMPLER of a k-diffusion sampler name, with options (``eta``, ``s_noise`` ...).

    A name a pack registered (``comfy.k_diffusion.sampling.sample_<name>``, which it may also
    have replaced) runs the pack's function."""
    from opencomfy.diffusion import sampler_objects

    custom = _pack_sampler_function(sampler_name)
    if custom is not None:
        return sampler_objects.KSAMPLER(custom, extra_options, inpaint_options, name=sampler_name)
    return sampler_objects.ksampler(sampler_name, extra_options, inpaint_options)


def sampler_object(name: str):
    """The SAMPLER of a KSampler ``sampler_name`` (what KSamplerSelect outputs)."""
    from opencomfy.diffusion import sampler_objects

    if name != "ddim" and _pack_sampler_function(name) is not None:
        return ksampler(name)
    return sampler_objects.sampler_object(name)


def _as_conditioning(cond):
    """CONDITIONING pairs, also from entries :func:`comfy.sampler_helpers.convert_cond` made."""
    if not cond or not isinstance(cond[0], dict):
        return cond
    dropped = ("cross_attn", "model_conds", "uuid")
    return [[c.get("cross_attn"), {k: v for k, v in c.items() if k not in dropped}] for c in cond]


def sample(model, noise, positive, negative, cfg, device, sampler, sigmas, model_options=None,
           latent_image=None, denoise_mask=None, callback=None, disable_pbar=False, seed=None):
    """CFG sampling of raw ``latent_image`` (zeros if None) plus ``noise`` with a SAMPLER over
    SIGMAS; returns raw latents. ``device`` and ``model_options`` are the MODEL's own here."""
    from opencomfy.diffusion.guiders import CFGGuider

    if latent_image is None:
        import torch

        latent_image = torch.zeros_like(noise)
    guider = CFGGuider(model)
    guider.set_conds(_as_conditioning(positive), _as_conditioning(negative))
    guider.set_cfg(cfg)
    return guider.sample(noise, latent_image, sampler, sigmas, denoise_mask=denoise_mask,
                         callback=callback, disable_pbar=disable_pbar, seed=seed)


class KSamplerX0Inpaint:
    """A guider wrapped for inpainting: where ``denoise_mask`` is 0 the sample is held on the
    input latent's own noising path and the prediction is the input latent. Set ``latent_image``
    and ``noise`` (scaled latents, as the sampler sees them) before calling."""

    def __init__(self, model, sigmas):
        self.inner_model = model
        self.sigmas = sigmas
        self.latent_image: Any = None
        self.noise: Any = None

    def __call__(self, x, sigma, denoise_mask, model_options=None, seed=None):
        import torch

        options = model_options or {}
        value = float(sigma.reshape(-1)[0]) if torch.is_tensor(sigma) else float(sigma)
        keep = None
        if denoise_mask is not None:
            if "denoise_mask_function" in options:
                denoise_mask = options["denoise_mask_function"](
                    sigma, denoise_mask, extra_options={"model": self.inner_model, "sigmas": self.sigmas})
            keep = 1.0 - denoise_mask
            x = x * denoise_mask + (self.latent_image + self.noise * value) * keep
        out = self.inner_model(x, value, model_options=model_options)
        if keep is not None:
            out = out * denoise_mask + self.latent_image * keep
        return out


class KSampler:
    """A sampler name, a scheduler and a step count over one MODEL (``.sigmas``), sampled by
    ``sample(noise, positive, negative, cfg, ...)``: the object ``comfy.sample.sample`` uses."""

    SCHEDULERS = SCHEDULER_NAMES
    SAMPLERS = SAMPLER_NAMES
    DISCARD_PENULTIMATE_SIGMA_SAMPLERS = {"dpm_2", "dpm_2_ancestral", "uni_pc", "uni_pc_bh2"}

    def __init__(self, model, steps, device, sampler=None, scheduler=None, denoise=None,
                 model_options=None):
        self.model = model
        self.device = device
        # Unknown names fall back to the first of each list, as in ComfyUI.
        self.scheduler = scheduler if scheduler in self.SCHEDULERS else self.SCHEDULERS[0]
        self.sampler = sampler if sampler in self.SAMPLERS else self.SAMPLERS[0]
        self.denoise = denoise
        self.model_options = model_options if model_options is not None else model.model_options
        self.set_steps(steps, denoise)

    def calculate_sigmas(self, steps: int):
        import torch

        discard = self.sampler in self.DISCARD_PENULTIMATE_SIGMA_SAMPLERS
        sigmas = calculate_sigmas(self.model.get_model_object("model_sampling"), self.scheduler,
                                  steps + 1 if discard else steps)
        if discard:
            sigmas = torch.cat([sigmas[:-2], sigmas[-1:]])
        return sigmas

    def set_steps(self, steps: int, denoise=None) -> None:
        import torch

        self.steps = steps
        if denoise is None or denoise > 0.9999:
            self.sigmas = self.calculate_sigmas(steps)
        elif denoise <= 0.0:
            self.sigmas = torch.zeros(0)
        else:
            self.sigmas = self.calculate_sigmas(int(steps / denoise))[-(steps + 1):]

    def sample(self, noise, positive, negative, cfg, latent_image=None, start_step=None,
               last_step=None, force_full_denoise=False, denoise_mask=None, sigmas=None,
               callback=None, disable_pbar=False, seed=None):
        """Sample over this sampler's sigmas (or ``sigmas``), cut to [start_step, last_step]."""
        import torch

        sigmas = self.sigmas if sigmas is None else sigmas
        if last_step is not None and last_step < len(sigmas) - 1:
            sigmas = sigmas[:last_step + 1].clone()
            if force_full_denoise:
                sigmas[-1] = 0
        if start_step is not None:
            if start_step >= len(sigmas) - 1:
                # Nothing left to sample: the input as it is.
                return latent_image if latent_image is not None else torch.zeros_like(noise)
            sigmas = sigmas[start_step:]
        return sample(self.model, noise, positive, negative, cfg, self.device,
                      sampler_object(self.sampler), sigmas, self.model_options,
                      latent_image=latent_image, denoise_mask=denoise_mask, callback=callback,
                      disable_pbar=disable_pbar, seed=seed)


# Ours under ComfyUI's names, loaded (with torch) on first access.
_LAZY = {
    "CFGGuider": ("opencomfy.diffusion.guiders", "CFGGuider"),
    "Sampler": ("opencomfy.diffusion.sampler_objects", "Sampler"),
    "KSAMPLER": ("opencomfy.diffusion.sampler_objects", "KSAMPLER"),
    "k_diffusion_sampling": ("opencomfy.compat.comfy.k_diffusion.sampling", None),
}

# ComfyUI's internals of cond handling, whose shapes (dicts of model conds) ours do not share:
# importable, failing by name when called.
_INTERNALS = frozenset({
    "CFGNoisePredictor", "can_concat_cond", "cond_cat", "get_area_and_mult",
    "encode_model_conds", "resolve_areas_and_cond_masks", "resolve_areas_and_cond_masks_multidim",
    "calculate_start_end_timesteps", "pre_run_control", "apply_empty_x_to_equal_area",
    "UNIPC", "UNIPCBH2", "get_mask_aabb", "finalize_default_conds", "cast_to_load_options",
})
_internal = module_getattr("comfy.samplers", _INTERNALS,
                           "opencomfy resolves conditioning its own way (opencomfy.diffusion.conditioning); "
                           "use comfy.samplers.process_conds / calc_cond_batch")


def __getattr__(name: str):
    if name in _LAZY:
        module_name, attribute = _LAZY[name]
        module = importlib.import_module(module_name)
        value = module if attribute is None else getattr(module, attribute)
        globals()[name] = value
        return value
    return _internal(name)
