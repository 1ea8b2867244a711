"""Self-Attention Guidance (Hong et al. 2023, "Improving Sample Quality of Diffusion Models
Using Self-Attention Guidance"), as ComfyUI's SelfAttentionGuidance node applies it.

While the negative (unconditional) prediction runs, the first self-attention of the UNet's
middle block records its attention probabilities. Key tokens that receive more than the
average attention (the columns of the head-averaged map summing to more than 1) mark the
regions the model attends to; the unconditional prediction is blurred there, re-noised to the
current step (``blurred + x - uncond``) and predicted again. Guidance then pushes away from
that degraded prediction: ``guided + (blurred - prediction_of_blurred) * scale``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

KERNEL_SIZE = 9
THRESHOLD = 1.0


def attention_with_probabilities(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int
                                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Multi-head attention over ``[B, N, heads * d]`` projections, also returning the softmaxed
    attention ``[B * heads, N, M]`` (batch-major, then head)."""
    b, n, inner = q.shape
    d = inner // heads

    def split(t):
        return t.reshape(b, -1, heads, d).permute(0, 2, 1, 3).reshape(b * heads, -1, d)

    qh, kh, vh = split(q), split(k), split(v)
    probs = (qh.float() @ kh.float().transpose(1, 2) * (d ** -0.5)).softmax(dim=-1)
    out = (probs.to(vh.dtype) @ vh).reshape(b, heads, n, d).permute(0, 2, 1, 3).reshape(b, n, inner)
    return out, probs


def gaussian_blur_2d(img: torch.Tensor, kernel_size: int, sigma: float) -> torch.Tensor:
    """A ``kernel_size`` Gaussian blur of each channel, edges reflected; ``sigma <= 0`` is no
    blur (the Gaussian's limit) rather than the division by zero it would be."""
    if sigma <= 0:
        return img
    half = (kernel_size - 1) / 2
    offsets = torch.linspace(-half, half, kernel_size, dtype=torch.float32)
    weights = torch.exp(-0.5 * (offsets / sigma) ** 2)
    weights = (weights / weights.sum()).to(img.device, img.dtype)
    kernel = torch.outer(weights, weights).expand(img.shape[-3], 1, kernel_size, kernel_size)
    pad = kernel_size // 2
    padded = F.pad(img, (pad, pad, pad, pad), mode="reflect")
    return F.conv2d(padded, kernel, groups=img.shape[-3])


def _grid(total: int, aspect: float) -> tuple[int, int]:
    """(rows, cols) with ``rows * cols == total`` and ``rows / cols`` near ``aspect`` (the
    attention's tokens are the latent at the middle block's resolution, row-major)."""
    guess = max(1, round(math.sqrt(aspect * total)))
    for step in range(total):
        for rows in (guess + step, guess - step):
            if 1 <= rows <= total and total % rows == 0:
                return rows, total // rows
    return total, 1


def blur_map(x0: torch.Tensor, attention: torch.Tensor, sigma: float,
             threshold: float = THRESHOLD) -> torch.Tensor:
    """``x0`` blurred where the recorded self-attention (``[B * heads, N, N]``) is high."""
    b, _, height, width = x0.shape
    _, queries, keys = attention.shape
    per_sample = attention.reshape(b, -1, queries, keys).mean(1)       # average the heads
    mask = per_sample.sum(1) > threshold                               # attention each key receives
    rows, cols = _grid(keys, height / width)
    mask = mask.reshape(b, 1, rows, cols).to(x0.dtype)
    mask = F.interpolate(mask, (height, width))
    blurred = gaussian_blur_2d(x0, KERNEL_SIZE, sigma)
    return blurred * mask + x0 * (1 - mask)


def self_attention_guidance(model, scale: float, blur_sigma: float):
    """A clone of ``model`` (a MODEL) with SAG: the middle block's first self-attention replaced
    by one that records the negative prediction's attention, and a post-CFG function that
    guides away from the prediction of the blurred negative."""
    from opencomfy.diffusion.guiders import calc_cond_batch

    recorded: dict[str, torch.Tensor | None] = {"attention": None}

    def attend_and_record(q, k, v, extra_options):
        heads = extra_options["n_heads"]
        groups = list(extra_options.get("cond_or_uncond") or [])
        out, probs = attention_with_probabilities(q, k, v, heads)
        if 1 in groups:
            # The batch is the slices of each cond list in turn; keep the negative's heads.
            per_group = heads * (q.shape[0] // len(groups))
            start = per_group * groups.index(1)
            recorded["attention"] = probs[start:start + per_group]
        return out

    def post_cfg(args):
        guided = args["denoised"]
        attention = recorded["attention"]
        uncond = args.get("uncond")
        # The blur's reflected edges need more than 4 latent pixels; without a negative
        # prediction there is nothing to degrade.
        if attention is None or not uncond or min(guided.shape[2:]) <= 4:
            return guided
        uncond_pred = args["uncond_denoised"]
        x = args["input"]
        degraded = blur_map(uncond_pred, attention.to(uncond_pred.dtype), blur_sigma)
        (prediction,) = calc_cond_batch(args["model"], [uncond], degraded + x - uncond_pred, args["sigma"],
                                        args["model_options"])
        return guided + (degraded - prediction) * scale

    m = model.clone()
    m.set_model_sampler_post_cfg_function(post_cfg, disable_cfg1_optimization=True)
    m.set_model_attn1_replace(attend_and_record, "middle", 0, 0)
    return m
