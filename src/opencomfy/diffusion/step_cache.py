"""Step caching: skip model evaluations whose output barely changes (ComfyUI's EasyCache and
LazyCache nodes; EasyCache after Zhou et al. 2025, "Less is Enough: Training-Free Video
Diffusion Acceleration via Runtime-Adaptive Caching").

Between two evaluated steps the cache learns how strongly the model's output responds to a
change of its input (``k = |output change| / |input change|``, mean absolute values on a
subsampled latent). At each later step it estimates the output's relative change as
``k * |input change| / |last output|`` and adds it up; while that sum stays under
``reuse_threshold`` the step is skipped and the output approximated as the new input plus the
last evaluated ``output - input`` difference. Once the sum reaches the threshold the model runs
again and the sum starts over. Skipping only happens between ``start_percent`` and
``end_percent`` of the schedule; after the end every step runs and nothing is tracked.

EasyCache works on the diffusion model call itself (a DIFFUSION_MODEL wrapper, model-space in
and out), one cached difference per cond list in the batch, the positive's change deciding for
all. LazyCache works one level up, on the guided prediction of a step (a PREDICT_NOISE wrapper).
The holder lives in ``transformer_options["easycache"]``; an OUTER_SAMPLE wrapper gives each
run a fresh copy and logs how many steps were skipped.
"""

from __future__ import annotations

import copy
import logging

import torch

from opencomfy.diffusion import patcher_extension as ext
from opencomfy.diffusion.model_patcher import create_model_options_clone

log = logging.getLogger(__name__)

KEY = "easycache"
SUBSAMPLE = 8


class StepCache:
    """What one sampling run has learned (see the module docstring)."""

    name = "EasyCache"

    def __init__(self, reuse_threshold: float, start_percent: float, end_percent: float,
                 subsample_factor: int = SUBSAMPLE, verbose: bool = False):
        self.reuse_threshold = float(reuse_threshold)
        self.start_percent = float(start_percent)
        self.end_percent = float(end_percent)
        self.subsample_factor = int(subsample_factor)
        self.verbose = bool(verbose)
        self.start_sigma = float("inf")
        self.end_sigma = 0.0
        self.reset()

    def reset(self) -> None:
        self.diffs: dict = {}                         # cond key -> last output - input
        self.lead: object = None                      # the cond key whose change decides
        self.x_prev: torch.Tensor | None = None       # subsampled input of the last evaluation
        self.out_prev: torch.Tensor | None = None     # subsampled output of the last evaluation
        self.out_prev_norm: torch.Tensor | None = None
        self.rate: torch.Tensor | None = None         # output change per input change
        self.cumulative = 0.0
        self.skip_step = False
        self.skipped = 0
        self.shape: tuple | None = None
        self.output_change_rates: list[float] = []
        self.approx_change_rates: list[float] = []

    def for_run(self, model_sampling) -> "StepCache":
        """A fresh copy for one sampling run, its sigma window set from the schedule."""
        run = copy.copy(self)
        run.reset()
        run.start_sigma = float(model_sampling.percent_to_sigma(self.start_percent))
        run.end_sigma = float(model_sampling.percent_to_sigma(self.end_percent))
        return run

    # -- the window -------------------------------------------------------------------------
    def past_end(self, sigma: float) -> bool:
        return not sigma > self.end_sigma

    def in_window(self, sigma: float) -> bool:
        return sigma <= self.start_sigma

    # -- tensors ----------------------------------------------------------------------------
    def subsample(self, x: torch.Tensor) -> torch.Tensor:
        f = self.subsample_factor
        return x[..., ::f, ::f].clone() if f > 1 else x.clone()

    def check_shape(self, x: torch.Tensor) -> None:
        """A latent of another size, dtype or device starts the cache over."""
        shape = (tuple(x.shape[1:]), x.dtype, x.device)
        if self.shape is not None and shape != self.shape:
            self.reset()
        self.shape = shape

    def should_skip(self, input_change: torch.Tensor) -> bool:
        """Add the estimated relative output change; True while the sum is under the threshold."""
        assert self.rate is not None and self.out_prev_norm is not None
        approx = float(self.rate * input_change / self.out_prev_norm)
        self.cumulative += approx
        if self.verbose:
            self.approx_change_rates.append(approx)
        if self.cumulative < self.reuse_threshold:
            if self.verbose:
                log.info("%s: skipping a step (accumulated change %.4f < %.4f)", self.name,
                         self.cumulative, self.reuse_threshold)
            return True
        if self.verbose:
            log.info("%s: running the model (accumulated change %.4f >= %.4f)", self.name,
                     self.cumulative, self.reuse_threshold)
        self.cumulative = 0.0
        return False

    def learn(self, x_sub: torch.Tensor, out: torch.Tensor, out_sub: torch.Tensor,
              input_change: torch.Tensor | None) -> None:
        """Remember an evaluation: the response rate (when there was an earlier one) and the
        new reference input and output."""
        if self.out_prev is not None and self.out_prev_norm is not None:
            output_change = (out_sub - self.out_prev).abs().mean()
            if self.verbose:
                self.output_change_rates.append(float(output_change / self.out_prev_norm))
            if input_change is not None and float(input_change) > 0:
                self.rate = output_change / input_change
        self.x_prev, self.out_prev = x_sub, out_sub
        self.out_prev_norm = out.abs().mean()

    def summary(self, steps: int) -> str:
        ran = max(steps - self.skipped, 1)
        return f"{self.name}: skipped {self.skipped}/{steps} steps ({steps / ran:.2f}x speedup)"


class LazyStepCache(StepCache):
    name = "LazyCache"


def _cond_keys(transformer_options: dict, batch: int) -> list:
    """One key per cond list slice of the batch: its cond_or_uncond value and occurrence."""
    groups = list(transformer_options.get("cond_or_uncond") or [0])
    seen: dict = {}
    keys = []
    for g in groups:
        keys.append((g, seen.get(g, 0)))
        seen[g] = seen.get(g, 0) + 1
    return keys if batch % len(keys) == 0 else [(0, 0)]


def _slices(x: torch.Tensor, keys: list):
    size = x.shape[0] // len(keys)
    return [(key, slice(i * size, (i + 1) * size)) for i, key in enumerate(keys)]


def outer_sample_wrapper(executor, *args, **kwargs):
    """Give this run its own cache (sigma window from the MODEL's schedule); log the savings."""
    guider = executor.class_obj
    original = guider.model_options
    guider.model_options = create_model_options_clone(original)
    to = guider.model_options.setdefault("transformer_options", {})
    if KEY not in to:
        guider.model_options = original
        return executor(*args, **kwargs)
    cache = to[KEY] = to[KEY].for_run(guider.model_patcher.get_model_object("model_sampling"))
    log.info("%s enabled: threshold %s, from %s to %s of the schedule", cache.name, cache.reuse_threshold,
             cache.start_percent, cache.end_percent)
    try:
        return executor(*args, **kwargs)
    finally:
        if cache.verbose:
            log.info("%s: output change rates %s", cache.name, cache.output_change_rates)
            log.info("%s: estimated change rates %s", cache.name, cache.approx_change_rates)
        sigmas = args[3] if len(args) > 3 else kwargs.get("sigmas")
        log.info(cache.summary(max(len(sigmas) - 1, 0) if sigmas is not None else 0))
        guider.model_options = original


def calc_cond_batch_wrapper(executor, *args, **kwargs):
    """A new step: the positive decides afresh whether the step is skipped."""
    options = args[4] if len(args) > 4 else kwargs.get("model_options")
    cache = (options or {}).get("transformer_options", {}).get(KEY)
    if cache is not None:
        cache.skip_step = False
    return executor(*args, **kwargs)


def diffusion_model_wrapper(executor, x, timestep, *args, **kwargs):
    """EasyCache around one diffusion model call (model space: ``x`` in, the output out)."""
    to = args[-1] if args and isinstance(args[-1], dict) else kwargs.get("transformer_options") or {}
    cache: StepCache | None = to.get(KEY)
    sigmas = to.get("sigmas")
    if cache is None or sigmas is None:
        return executor(x, timestep, *args, **kwargs)
    sigma = float(sigmas.reshape(-1)[0])
    if cache.past_end(sigma):
        return executor(x, timestep, *args, **kwargs)
    keys = _cond_keys(to, x.shape[0])
    parts = dict((key, part) for key, part in _slices(x, keys))
    input_change = None
    if cache.in_window(sigma):
        cache.check_shape(x[parts[keys[0]]])
        if cache.skip_step and all(k in cache.diffs for k in keys):
            return _apply_diffs(cache, x, keys)
        if cache.lead is None:
            cache.lead = keys[0]
        if cache.lead in parts:
            lead_x = cache.subsample(x[parts[cache.lead]])
            if cache.x_prev is not None:
                input_change = (lead_x - cache.x_prev).abs().mean()
            if (input_change is not None and cache.rate is not None and all(k in cache.diffs for k in keys)
                    and cache.should_skip(input_change)):
                cache.skip_step = True
                cache.skipped += 1
                return _apply_diffs(cache, x, keys)
    out = executor(x, timestep, *args, **kwargs)
    # An inpainting model's input has extra channels: the difference is over the output's.
    channels = out.shape[1]
    for key, part in parts.items():
        cache.diffs[key] = (out[part] - x[part][:, :channels]).detach()
    if cache.lead in parts:
        lead = parts[cache.lead]
        cache.learn(cache.subsample(x[lead]), out[lead], cache.subsample(out[lead]), input_change)
    return out


def _apply_diffs(cache: StepCache, x: torch.Tensor, keys: list) -> torch.Tensor:
    channels = cache.diffs[keys[0]].shape[1]
    out = x[:, :channels].clone()
    for key, part in _slices(x, keys):
        out[part] += cache.diffs[key].to(x.device, x.dtype)
    return out


def predict_noise_wrapper(executor, x, timestep, model_options=None, *args, **kwargs):
    """LazyCache around a step's guided prediction (``x`` in, the denoised sample out)."""
    cache: StepCache | None = (model_options or {}).get("transformer_options", {}).get(KEY)
    if cache is None:
        return executor(x, timestep, model_options, *args, **kwargs)
    sigma = float(timestep.reshape(-1)[0]) if torch.is_tensor(timestep) else float(timestep)
    if cache.past_end(sigma):
        return executor(x, timestep, model_options, *args, **kwargs)
    input_change = None
    x_sub = cache.subsample(x)
    if cache.in_window(sigma):
        cache.check_shape(x)
        if cache.x_prev is not None:
            input_change = (x_sub - cache.x_prev).abs().mean()
        if (input_change is not None and cache.rate is not None and "all" in cache.diffs
                and cache.should_skip(input_change)):
            cache.skipped += 1
            return x + cache.diffs["all"].to(x.device, x.dtype)
    out = executor(x, timestep, model_options, *args, **kwargs)
    cache.diffs["all"] = (out - x).detach()
    cache.learn(x_sub, out, cache.subsample(out), input_change)
    return out


def with_step_cache(model, cache: StepCache, lazy: bool):
    """A clone of ``model`` (a MODEL) that caches steps with ``cache`` (EasyCache or LazyCache)."""
    m = model.clone()
    m.model_options.setdefault("transformer_options", {})[KEY] = cache
    m.add_wrapper_with_key(ext.WrappersMP.OUTER_SAMPLE, KEY, outer_sample_wrapper)
    if lazy:
        m.add_wrapper_with_key(ext.WrappersMP.PREDICT_NOISE, KEY, predict_noise_wrapper)
    else:
        m.add_wrapper_with_key(ext.WrappersMP.CALC_COND_BATCH, KEY, calc_cond_batch_wrapper)
        m.add_wrapper_with_key(ext.WrappersMP.DIFFUSION_MODEL, KEY, diffusion_model_wrapper)
    return m
