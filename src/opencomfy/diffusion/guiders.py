"""GUIDER: a model and its conditioning, turned into one denoised prediction per step.

This is the one sampling path: KSampler, SamplerCustom and SamplerCustomAdvanced all end in
:meth:`CFGGuider.sample`, which resolves the CONDITIONING against the latent, loads the model
(and any ControlNets) onto the device, scales the latent into the model's space and lets the
SAMPLER walk the SIGMAS with the guider as its ``denoise(x, sigma) -> x0`` function.

The classes keep ComfyUI's shape (``set_conds``, ``set_cfg``, ``inner_model``,
``model_patcher``, ``predict_noise`` returning the guided denoised sample, ``sample(noise,
latent_image, sampler, sigmas, denoise_mask, callback, disable_pbar, seed)``), so a custom
node can subclass :class:`CFGGuider` and override ``predict_noise`` with
:func:`calc_cond_batch`.
"""

from __future__ import annotations

import math

import torch

from opencomfy.diffusion import conditioning as conds
from opencomfy.diffusion import patcher_extension as ext
from opencomfy.diffusion.memory import models_in_use
from opencomfy.diffusion.model_patcher import create_model_options_clone
from opencomfy.diffusion.sampler_objects import resize_mask
from opencomfy.diffusion.sampling import inpaint_concat


def _sigma_of(timestep) -> float:
    return float(timestep.reshape(-1)[0]) if torch.is_tensor(timestep) else float(timestep)


def _keep_uncond(model_options) -> bool:
    """Whether the run asked for the unguided prediction even where guidance cancels it."""
    return bool((model_options or {}).get("disable_cfg1_optimization", False))


def _calc_cond_batch(model, cond_lists: list, x: torch.Tensor, timestep, model_options=None,
                     plans: dict | None = None) -> list[torch.Tensor]:
    present = [i for i, c in enumerate(cond_lists) if c]
    outs = conds.predict(model, x, _sigma_of(timestep), [cond_lists[i] for i in present], plans,
                         model_options=model_options)
    result = [torch.zeros_like(x) for _ in cond_lists]
    for i, out in zip(present, outs, strict=True):
        result[i] = out
    return result


def calc_cond_batch(model, cond_lists: list, x: torch.Tensor, timestep, model_options=None,
                    plans: dict | None = None) -> list[torch.Tensor]:
    """The denoised prediction of each resolved cond list at ``timestep`` (a sigma); a None or
    empty list predicts zeros, as in ComfyUI. ``model_options`` (default: the MODEL's) carry
    the patches; its CALC_COND_BATCH wrappers run around the evaluation."""
    options = model.model_options if model_options is None else model_options
    return ext.run_wrapped(ext.WrappersMP.CALC_COND_BATCH, options, _calc_cond_batch, None, model,
                           cond_lists, x, timestep, options, plans, is_model_options=True)


def cfg_function(model, cond_pred: torch.Tensor, uncond_pred: torch.Tensor, cond_scale: float,
                 x: torch.Tensor, timestep, model_options=None, cond=None, uncond=None) -> torch.Tensor:
    """The guided denoised sample: the MODEL's ``sampler_cfg_function`` (which works on noise
    predictions, ``x - denoised``) or plain CFG, then each ``sampler_post_cfg_function``."""
    options = model_options or {}
    if "sampler_cfg_function" in options:
        args = {"cond": x - cond_pred, "uncond": x - uncond_pred, "cond_scale": cond_scale,
                "timestep": timestep, "input": x, "sigma": timestep, "cond_denoised": cond_pred,
                "uncond_denoised": uncond_pred, "model": model, "model_options": options,
                "input_cond": cond, "input_uncond": uncond}
        result = x - options["sampler_cfg_function"](args)
    else:
        result = uncond_pred + (cond_pred - uncond_pred) * cond_scale
    for fn in options.get("sampler_post_cfg_function", []):
        args = {"denoised": result, "cond": cond, "uncond": uncond, "cond_scale": cond_scale,
                "model": model, "uncond_denoised": uncond_pred, "cond_denoised": cond_pred,
                "sigma": timestep, "model_options": options, "input": x}
        result = fn(args)
    return result


def sampling_function(model, x: torch.Tensor, timestep, uncond, cond, cond_scale: float,
                      model_options=None, seed=None, plans: dict | None = None):
    """One guided step as ComfyUI's ``comfy.samplers.sampling_function``: evaluate the
    conditionings (the negative skipped at cfg 1 unless the options keep it), run the pre-CFG
    functions, combine. Returns (guided, unguided) denoised predictions."""
    options = model_options or {}
    keep = not math.isclose(cond_scale, 1.0) or _keep_uncond(options)
    uncond_ = uncond if keep else None
    lists = [cond, uncond_]
    if "sampler_calc_cond_batch_function" in options:
        out = options["sampler_calc_cond_batch_function"](
            {"conds": lists, "input": x, "sigma": timestep, "model": model, "model_options": options})
    else:
        out = calc_cond_batch(model, lists, x, timestep, options, plans)
    for fn in options.get("sampler_pre_cfg_function", []):
        out = fn({"conds": lists, "conds_out": out, "cond_scale": cond_scale, "timestep": timestep,
                  "input": x, "sigma": timestep, "model": model, "model_options": options})
    guided = cfg_function(model, out[0], out[1], cond_scale, x, timestep, options, cond=cond, uncond=uncond_)
    return guided, (out[1] if uncond_ is not None else out[0])


class CFGGuider:
    """Classifier-free guidance between a positive and a negative CONDITIONING."""

    def __init__(self, model_patcher):
        self.model_patcher = model_patcher
        self.model_options = create_model_options_clone(getattr(model_patcher, "model_options", None) or {})
        self.original_conds: dict[str, list] = {}
        self.cfg = 1.0
        self.conds: dict[str, list] = {}      # resolved against the latent while sampling
        self.last_uncond: torch.Tensor | None = None   # for the CFG++ samplers
        self._plans: dict = {}
        self._seed: int | None = None

    @property
    def inner_model(self):
        return self.model_patcher

    @property
    def model(self):
        return self.model_patcher

    def set_conds(self, positive, negative) -> None:
        self.inner_set_conds({"positive": positive, "negative": negative})

    def set_cfg(self, cfg: float) -> None:
        self.cfg = float(cfg)

    def inner_set_conds(self, conditionings: dict) -> None:
        for name, value in conditionings.items():
            if not isinstance(value, (list, tuple)):
                raise ValueError(f"the {name} input must be a CONDITIONING (a list of "
                                 f"[tensor, options] pairs), got {type(value).__name__}")
        self.original_conds = {name: list(value) for name, value in conditionings.items()}

    def batch(self, cond_lists: list, x: torch.Tensor, timestep) -> list[torch.Tensor]:
        """:func:`calc_cond_batch` over this run's model, reusing its batching plans."""
        return calc_cond_batch(self.model_patcher, cond_lists, x, timestep, self.model_options, self._plans)

    def predict_noise(self, x: torch.Tensor, timestep, model_options=None, seed=None) -> torch.Tensor:
        """The guided denoised sample at ``timestep`` (a sigma), despite ComfyUI's name."""
        options = self.model_options if model_options is None else model_options
        positive = self.conds.get("positive")
        negative = self.conds.get("negative")
        if negative is None:
            # Nothing to guide against (BasicGuider): the positive prediction as it is.
            (cond,) = calc_cond_batch(self.model_patcher, [positive], x, timestep, options, self._plans)
            self.last_uncond = cond
            return cond
        guided, self.last_uncond = sampling_function(self.model_patcher, x, timestep, negative, positive,
                                                     self.cfg, options, seed, self._plans)
        return guided

    def __call__(self, x: torch.Tensor, sigma: float, model_options: dict | None = None) -> torch.Tensor:
        """``denoise(x, sigma) -> x0`` for the samplers (inside the PREDICT_NOISE wrappers)."""
        # float64 so that the sigma survives the round trip to a tensor exactly.
        timestep = torch.full((x.shape[0],), float(sigma), dtype=torch.float64, device=x.device)
        options = self.model_options if model_options is None else model_options
        return ext.run_wrapped(ext.WrappersMP.PREDICT_NOISE, options, self.predict_noise, self,
                               x, timestep, options, self._seed, is_model_options=True)

    def _resolve(self, latent_image: torch.Tensor, denoise_mask) -> list:
        """Resolve every CONDITIONING against the latent's size; returns the ControlNets and GLIGEN
        models used (to load with the UNet)."""
        model = self.model_patcher
        height, width = latent_image.shape[-2:]
        self.conds = {}
        for name, conditioning in self.original_conds.items():
            resolved = conds.resolve(conditioning, schedule=model.schedule, height=height, width=width,
                                     needs_pooled=model.needs_pooled)
            if model.is_inpaint:
                for c in resolved:
                    c.concat = inpaint_concat(model, c.options, latent_image, denoise_mask)
            self.conds[name] = resolved
        applied = [a for resolved in self.conds.values() for c in resolved for a in c.controls]
        # GLIGEN models load with the UNet, as the ControlNets do.
        gligens = [g[1] for resolved in self.conds.values() for c in resolved
                   if isinstance(g := c.options.get("gligen"), (tuple, list)) and len(g) > 1
                   and hasattr(g[1], "modules")]
        return list({id(a.control): a.control for a in applied}.values()) + list({id(g): g for g in gligens}.values())

    def sample(self, noise: torch.Tensor, latent_image: torch.Tensor, sampler, sigmas: torch.Tensor,
               denoise_mask: torch.Tensor | None = None, callback=None, disable_pbar: bool = False,
               seed: int | None = None) -> torch.Tensor:
        """Sample from raw ``latent_image`` plus ``noise`` over ``sigmas``; returns raw latents.

        The run works on a copy of the options into which the MODEL's wrappers and callbacks are
        merged, and runs inside the OUTER_SAMPLE wrappers."""
        if sigmas.shape[-1] == 0:
            return latent_image
        model = self.model_patcher
        unet_in = int(model.unet.config.in_channels)
        if unet_in != model.latent_channels and not model.is_inpaint:
            raise ValueError(f"models whose UNet takes {unet_in} input channels (such as "
                             "instruct-pix2pix) are not supported yet")
        original = self.model_options
        self.model_options = create_model_options_clone(original)
        to = self.model_options.setdefault("transformer_options", {})
        for section in ("wrappers", "callbacks"):
            to[section] = ext.merge_nested_dicts(getattr(model, section, {}), to.get(section, {}))
        try:
            wrappers = ext.get_all_wrappers(ext.WrappersMP.OUTER_SAMPLE, self.model_options, True)
            executor = ext.WrapperExecutor.new_class_executor(self.outer_sample, self, wrappers)
            return executor.execute(noise, latent_image, sampler, sigmas, denoise_mask, callback,
                                    disable_pbar, seed)
        finally:
            self.model_options = original

    def outer_sample(self, noise, latent_image, sampler, sigmas, denoise_mask=None, callback=None,
                     disable_pbar=False, seed=None):
        """Resolve the conditionings, load and patch the model, sample, undo the patches."""
        model = self.model_patcher
        controlnets = self._resolve(latent_image, denoise_mask)
        self._plans, self._seed, self.last_uncond = {}, seed, None
        model.pre_run()
        try:
            with models_in_use(model, *controlnets) as device:
                model.patch_model(device)
                try:
                    x = self.inner_sample(noise, latent_image, device, sampler, sigmas, denoise_mask,
                                          callback, disable_pbar, seed)
                finally:
                    model.unpatch_model()
                out = model.process_latent_out(x.float())
        finally:
            self.conds, self._plans, self.last_uncond = {}, {}, None
            model.cleanup()
        return out.cpu()

    def inner_sample(self, noise, latent_image, device, sampler, sigmas, denoise_mask, callback,
                     disable_pbar, seed):
        model = self.model_patcher
        latent = model.process_latent_in(latent_image).to(device)
        noise = noise.to(device)
        mask = None if denoise_mask is None else resize_mask(denoise_mask, latent).to(device)
        extra_args = {"seed": seed, "model_options": self.model_options}
        sigmas = sigmas.float()
        x = ext.run_wrapped(ext.WrappersMP.SAMPLER_SAMPLE, self.model_options, sampler.sample, sampler,
                            self, sigmas, extra_args, callback, noise, latent, mask, disable_pbar,
                            is_model_options=True)
        # Flow models keep (1 - sigma) of the sample: a run that ends above 0 is scaled back.
        return model.schedule.inverse_noise_scaling(sigmas[-1], x)


class BasicGuider(CFGGuider):
    """The positive conditioning alone, without guidance (flow models, cfg-distilled models)."""

    def set_conds(self, positive) -> None:  # type: ignore[override]
        self.inner_set_conds({"positive": positive})


class DualCFGGuider(CFGGuider):
    """Guidance by two prompts: ``cond1`` pulled away from ``cond2`` by ``cfg1`` and ``cond2``
    from the negative by ``cfg2``, either summed ("regular") or one inside the other ("nested")."""

    def __init__(self, model_patcher):
        super().__init__(model_patcher)
        self.cfg1 = self.cfg2 = 1.0
        self.nested = False

    def set_cfg(self, cfg1: float, cfg2: float = 1.0, nested: bool = False) -> None:  # type: ignore[override]
        self.cfg1, self.cfg2, self.nested = float(cfg1), float(cfg2), bool(nested)

    def set_conds(self, positive, middle, negative) -> None:  # type: ignore[override]
        middle = [[t, {**options, "prompt_type": "negative"}] for t, options in middle]
        self.inner_set_conds({"positive": positive, "middle": middle, "negative": negative})

    def predict_noise(self, x, timestep, model_options=None, seed=None):
        positive, middle, negative = (self.conds.get(k) for k in ("positive", "middle", "negative"))
        if self.nested:
            neg, mid, pos = self.batch([negative, middle, positive], x, timestep)
            self.last_uncond = mid
            return neg + self.cfg2 * (mid + (pos - mid) * self.cfg1 - neg)
        # A weight of 1 cancels the prompt it pulls away from: skip evaluating it.
        skip_negative = math.isclose(self.cfg2, 1.0) and not _keep_uncond(model_options)
        skip_middle = skip_negative and math.isclose(self.cfg1, 1.0)
        neg, mid, pos = self.batch([None if skip_negative else negative,
                                    None if skip_middle else middle, positive], x, timestep)
        self.last_uncond = pos if skip_middle else mid if skip_negative else neg
        return neg + (mid - neg) * self.cfg2 + (pos - mid) * self.cfg1


def perp_neg(pos: torch.Tensor, neg: torch.Tensor, empty: torch.Tensor, neg_scale: float,
             cfg: float) -> torch.Tensor:
    """Perp-Neg (Armandpour et al. 2023): guide away only from the part of the negative
    direction that is perpendicular to the positive one, both taken from the empty prompt."""
    toward = pos - empty
    away = neg - empty
    norm_sq = torch.sum(toward * toward)
    parallel = (torch.sum(away * toward) / norm_sq) * toward if norm_sq > 0 else torch.zeros_like(away)
    return empty + cfg * (toward - (away - parallel) * neg_scale)


class PerpNegGuider(CFGGuider):
    """CFG with the Perp-Neg treatment of the negative prompt."""

    def __init__(self, model_patcher):
        super().__init__(model_patcher)
        self.neg_scale = 1.0

    def set_conds(self, positive, negative, empty_negative_prompt) -> None:  # type: ignore[override]
        empty = [[t, {**options, "prompt_type": "negative"}] for t, options in empty_negative_prompt]
        self.inner_set_conds({"positive": positive, "empty_negative_prompt": empty, "negative": negative})

    def set_cfg(self, cfg: float, neg_scale: float = 1.0) -> None:  # type: ignore[override]
        self.cfg, self.neg_scale = float(cfg), float(neg_scale)

    def predict_noise(self, x, timestep, model_options=None, seed=None):
        names = ("positive", "negative", "empty_negative_prompt")
        pos, neg, empty = self.batch([self.conds.get(k) for k in names], x, timestep)
        self.last_uncond = neg
        return perp_neg(pos, neg, empty, self.neg_scale, self.cfg)


def sample_custom(model, noise: torch.Tensor, cfg: float, sampler, sigmas: torch.Tensor, positive,
                  negative, latent_image: torch.Tensor, *, noise_mask=None, callback=None,
                  disable_pbar: bool = False, seed: int | None = None) -> torch.Tensor:
    """CFG sampling with a SAMPLER over SIGMAS (ComfyUI's ``comfy.sample.sample_custom``)."""
    guider = CFGGuider(model)
    guider.set_conds(positive, negative)
    guider.set_cfg(cfg)
    return guider.sample(noise, latent_image, sampler, sigmas, denoise_mask=noise_mask,
                         callback=callback, disable_pbar=disable_pbar, seed=seed)
