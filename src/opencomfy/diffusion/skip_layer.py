"""Skip Layer Guidance (the SkipLayerGuidanceSD3/DiT/DiTSimple nodes): guide with a prediction
made with some transformer blocks skipped.

Blocks are skipped by block replacement (``patches_replace["dit"][("double_block", i)]``, see
:mod:`transformer_blocks`), so the mechanism works on any model whose blocks are indexed. On
our SD UNets the "double" layers are the UNet's transformer blocks in running order (SD 1.5:
0-5 the input blocks', 6 the middle block's, 7-15 the output blocks'); a UNet has no "single"
layers, and single-layer numbers are ignored there as ComfyUI ignores them on SD3, whose
blocks are all joint ones. Layer numbers past the model's blocks, or a list that names only
block kinds the model lacks, are refused with an error that gives the model's block counts.

- :func:`skip_layer_guidance` (SD3, DiT): after CFG, add ``(cond - cond_skipped) * scale``
  while the sigma is in the window, optionally rescaled toward the positive's spread.
- :func:`skip_layer_guidance_simple` (DiTSimple): inside the window the negative prompt is
  predicted with the blocks skipped, so plain CFG guides away from that weakened prediction.
"""

from __future__ import annotations

import re

from opencomfy.diffusion.model_patcher import set_model_options_patch_replace
from opencomfy.diffusion.transformer_blocks import DOUBLE, SINGLE, block_counts


def parse_layers(text: str) -> list[int]:
    """The layer numbers in a comma-separated list (any run of digits counts, as ComfyUI)."""
    return [int(n) for n in re.findall(r"\d+", text or "")]


def skip_block(args: dict, extra: dict) -> dict:
    """A block replacement that passes the block's inputs through untouched."""
    return args


def checked_layers(model, double: list[int], single: list[int]) -> dict[str, list[int]]:
    """The layers to skip, by block kind, checked against the model's blocks."""
    counts = block_counts(model.model.diffusion_model)
    described = f"{counts[DOUBLE]} double and {counts[SINGLE]} single transformer blocks"
    chosen = {}
    for kind, layers in ((DOUBLE, double), (SINGLE, single)):
        if not layers or counts[kind] == 0:
            continue
        outside = [n for n in layers if n >= counts[kind]]
        if outside:
            raise ValueError(f"{kind.replace('_block', '')} layers {outside} do not exist: this model has "
                             f"{described} (numbered from 0)")
        chosen[kind] = layers
    if not chosen:
        raise ValueError(f"none of the layers to skip exist: this model has {described}"
                         + (" (an SD UNet's transformer blocks are its double layers)"
                            if counts[SINGLE] == 0 and counts[DOUBLE] else ""))
    return chosen


def skipping_options(model_options: dict, layers: dict[str, list[int]]) -> dict:
    """A copy of ``model_options`` that skips ``layers``."""
    options = model_options
    for kind, numbers in layers.items():
        for n in numbers:
            options = set_model_options_patch_replace(options, skip_block, "dit", kind, n)
    return options


def _window(model, start_percent: float, end_percent: float) -> tuple[float, float]:
    sampling = model.get_model_object("model_sampling")
    return sampling.percent_to_sigma(start_percent), sampling.percent_to_sigma(end_percent)


def _sigma(timestep) -> float:
    return float(timestep.reshape(-1)[0])


def skip_layer_guidance(model, scale: float, start_percent: float, end_percent: float,
                        double_layers: str = "", single_layers: str = "", rescaling_scale: float = 0.0):
    """A clone of ``model`` with skip layer guidance after CFG (module docstring)."""
    from opencomfy.diffusion.guiders import calc_cond_batch

    double, single = parse_layers(double_layers), parse_layers(single_layers)
    if not double and not single:
        return model
    layers = checked_layers(model, double, single)
    sigma_start, sigma_end = _window(model, start_percent, end_percent)

    def post_cfg(args):
        guided = args["denoised"]
        sigma = _sigma(args["sigma"])
        if scale <= 0 or not sigma_end <= sigma <= sigma_start:
            return guided
        cond_pred = args["cond_denoised"]
        options = skipping_options(args["model_options"], layers)
        (skipped,) = calc_cond_batch(args["model"], [args["cond"]], args["input"], args["sigma"], options)
        guided = guided + (cond_pred - skipped) * scale
        if rescaling_scale != 0:
            # Pull the result's spread back toward the positive prediction's.
            factor = cond_pred.std() / guided.std()
            guided = guided * (rescaling_scale * factor + (1 - rescaling_scale))
        return guided

    m = model.clone()
    m.set_model_sampler_post_cfg_function(post_cfg)
    return m


def skip_layer_guidance_simple(model, start_percent: float, end_percent: float,
                               double_layers: str = "", single_layers: str = ""):
    """A clone of ``model`` whose negative prediction skips the layers inside the window."""
    from opencomfy.diffusion.guiders import calc_cond_batch

    double, single = parse_layers(double_layers), parse_layers(single_layers)
    if not double and not single:
        return model
    layers = checked_layers(model, double, single)
    sigma_start, sigma_end = _window(model, start_percent, end_percent)

    def calc_cond_batch_function(args):
        x, sigma, model_ = args["input"], args["sigma"], args["model"]
        options = args["model_options"]
        cond, uncond = args["conds"]
        if uncond is not None and sigma_end <= _sigma(sigma) <= sigma_start:
            (cond_out,) = calc_cond_batch(model_, [cond], x, sigma, options)
            (uncond_out,) = calc_cond_batch(model_, [uncond], x, sigma, skipping_options(options, layers))
            return [cond_out, uncond_out]
        return calc_cond_batch(model_, [cond, uncond], x, sigma, options)

    m = model.clone()
    m.set_model_sampler_calc_cond_batch_function(calc_cond_batch_function)
    return m
