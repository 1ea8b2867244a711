"""Classifier-free guidance over ComfyUI's CONDITIONING lists.

A CONDITIONING is ``[[tensor [1, tokens, dim], options], ...]``. Each entry of a list is
evaluated by the UNet and the entries are blended, weighted by ``strength`` and by their
``area`` (with an 8-pixel feather inside the image) or ``mask``; entries outside their
``start_percent``/``end_percent`` range are skipped at that step. Entries with the same area
shape run in one batch; token lengths that differ are repeated up to a common multiple, which
leaves attention unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F

from opencomfy.diffusion.hooks import HookGroup, fill_defaults, hooks_applied, hooks_key
from opencomfy.diffusion.text_encoder import lcm_length
from opencomfy.engine.progress import throw_if_interrupted

FEATHER = 8


@dataclass
class Cond:
    """One entry of a CONDITIONING list, resolved against the latent's size."""

    context: torch.Tensor           # [1 or B, tokens, dim]
    area: tuple[int, int, int, int] | None   # (h, w, y, x) in latent pixels
    weight: torch.Tensor | None     # [1 or B, 1, h, w] multiplier over the area
    strength: float
    sigma_range: tuple[float, float]  # (sigma at start, sigma at end)
    pooled: torch.Tensor | None = None     # [1 or B, dim] (SDXL)
    time_ids: torch.Tensor | None = None   # [1, 6] original size, crop, target size (SDXL)
    controls: tuple = ()                   # ControlApply entries (ControlNetApplyAdvanced)
    concat: torch.Tensor | None = None     # [1 or B, 5, h, w] mask + masked latent (inpaint models)
    options: dict = field(default_factory=dict)

    def active(self, sigma: float) -> bool:
        high, low = self.sigma_range
        return low <= sigma <= high


def _area_and_weight(options: dict, height: int, width: int):
    area = None
    if "area" in options:
        a = options["area"]
        if isinstance(a[0], str) and a[0] == "percentage":
            h = max(1, round(a[1] * height))
            w = max(1, round(a[2] * width))
            y, x = round(a[3] * height), round(a[4] * width)
        else:
            h, w, y, x = (int(v) for v in a[:4])
        y, x = min(y, height - 1), min(x, width - 1)
        area = (min(h, height - y), min(w, width - x), y, x)
    weight = None
    mask = options.get("mask")
    if mask is not None:
        mask = mask.reshape(-1, 1, mask.shape[-2], mask.shape[-1]).float()
        mask = F.interpolate(mask, size=(height, width), mode="bilinear", align_corners=False)
        if options.get("set_area_to_bounds"):
            nonzero = (mask[0, 0] > 0).nonzero()
            if len(nonzero):
                y0, x0 = nonzero.min(0).values.tolist()
                y1, x1 = nonzero.max(0).values.tolist()
                area = (y1 - y0 + 1, x1 - x0 + 1, y0, x0)
            else:
                area = (8, 8, 0, 0)
        weight = mask * options.get("mask_strength", 1.0)
    if area is not None:
        h, w, y, x = area
        if weight is not None:
            weight = weight[:, :, y:y + h, x:x + w]
        else:
            # Fade in over 8 latent pixels from every edge that is inside the image; on small
            # areas the fades of opposite edges overlap and multiply, as in ComfyUI.
            weight = torch.ones(1, 1, h, w)
            for t in range(FEATHER):
                ramp = (t + 1) / FEATHER
                if t < h and y != 0:
                    weight[:, :, t] *= ramp
                if t < h and y + h < height:
                    weight[:, :, h - 1 - t] *= ramp
                if t < w and x != 0:
                    weight[:, :, :, t] *= ramp
                if t < w and x + w < width:
                    weight[:, :, :, w - 1 - t] *= ramp
    return area, weight


def sdxl_time_ids(options: dict, height: int, width: int) -> torch.Tensor:
    """SDXL's size conditioning: original (h, w), crop (top, left), target (h, w) in pixels;
    by default the image's own size and no crop."""
    h = options.get("height", height * 8)
    w = options.get("width", width * 8)
    return torch.tensor([[h, w, options.get("crop_h", 0), options.get("crop_w", 0),
                          options.get("target_height", h), options.get("target_width", w)]],
                        dtype=torch.float32)


def _controls(options: dict) -> tuple:
    """The entry's ControlNet applications, carrying the entry's ControlNet-only text
    (``cross_attn_controlnet`` from CLIPTextEncodeControlnet) when it has one."""
    controls = tuple(options.get("control", ()))
    context = options.get("cross_attn_controlnet")
    if context is None or not controls:
        return controls
    pooled = options.get("pooled_output_controlnet")
    return tuple(replace(a, context=context, pooled=pooled) for a in controls)


def resolve(conditioning, *, schedule, height: int, width: int, needs_pooled: bool = False) -> list[Cond]:
    """CONDITIONING -> :class:`Cond` list for a latent of ``height`` x ``width``."""
    out = []
    for tensor, options in conditioning:
        if options.get("unclip_conditioning"):
            # No model we load takes an image embedding; ignoring it would give a different image.
            raise ValueError("this conditioning carries an unCLIPConditioning image embedding, which only "
                             "SD 2.x unCLIP models use, and those are not supported yet; remove the "
                             "unCLIPConditioning node or use its conditioning input directly")
        area, weight = _area_and_weight(options, height, width)
        high = schedule.percent_to_sigma(options.get("start_percent", 0.0))
        low = schedule.percent_to_sigma(options.get("end_percent", 1.0))
        cond = Cond(context=tensor, area=area, weight=weight,
                    strength=float(options.get("strength", 1.0)), sigma_range=(high, low),
                    controls=_controls(options), options=options)
        if needs_pooled:
            pooled = options.get("pooled_output")
            if pooled is None:
                raise ValueError("this model needs the pooled text embedding (an SDXL CLIP's "
                                 "CLIPTextEncode output)")
            cond.pooled = pooled
            cond.time_ids = sdxl_time_ids(options, height, width)
        out.append(cond)
    return out


def _piece_input(x: torch.Tensor, cond: Cond) -> torch.Tensor:
    if cond.area is None:
        return x
    h, w, y, xx = cond.area
    return x[:, :, y:y + h, xx:xx + w]


@dataclass
class _Group:
    """Entries evaluated in one UNet call, with their inputs batched once per sampling run."""

    jobs: list                        # [(set index, Cond)]
    context: torch.Tensor
    pooled: torch.Tensor | None
    time_ids: torch.Tensor | None
    concat: torch.Tensor | None = None
    hooks: HookGroup | None = None    # the entries' HookGroup (hooks are never mixed in a call)
    gligen: object = None             # the entry's GLIGEN boxes (such an entry runs alone)


def _crop(t: torch.Tensor, c: Cond) -> torch.Tensor:
    if c.area is None:
        return t
    h, w, y, x = c.area
    return t[:, :, y:y + h, x:x + w]


def _plan(jobs: list, x: torch.Tensor) -> list[_Group]:
    batch, device = x.shape[0], x.device
    by_shape: dict[tuple, list] = {}
    for job in jobs:
        # Entries with other hooks run with other weights: never in the same UNet call; an entry
        # with GLIGEN boxes patches the UNet for itself alone (as ComfyUI batches them).
        alone = id(job[1]) if job[1].options.get("gligen") else None
        by_shape.setdefault((tuple(_piece_input(x, job[1]).shape), hooks_key(job[1]), alone), []).append(job)
    groups = []
    for group in by_shape.values():
        tokens = lcm_length(c.context.shape[1] for _, c in group)
        contexts, pooled, time_ids, concats = [], [], [], []
        for _, c in group:
            if c.concat is not None:
                extra = _crop(c.concat.to(device), c)
                concats.append(extra.expand(batch, -1, -1, -1) if extra.shape[0] == 1 else extra)
            ctx = c.context.to(device)
            ctx = ctx.repeat(1, tokens // ctx.shape[1], 1)
            contexts.append(ctx.expand(batch, -1, -1) if ctx.shape[0] == 1 else ctx)
            if c.pooled is not None:
                pooled.append(c.pooled.expand(batch, -1) if c.pooled.shape[0] == 1 else c.pooled)
                time_ids.append(c.time_ids.expand(batch, -1))
        groups.append(_Group(group, torch.cat(contexts), torch.cat(pooled) if pooled else None,
                             torch.cat(time_ids) if time_ids else None,
                             torch.cat(concats) if concats else None, group[0][1].options.get("hooks"),
                             group[0][1].options.get("gligen")))
    return groups


def _with_gligen(model, model_options: dict | None, entry, x_in: torch.Tensor) -> dict:
    """The model options plus the GLIGEN ``middle_patch`` of an entry, for this UNet call (its
    grounding tokens depend on the latent's size)."""
    from opencomfy.diffusion.gligen import middle_patch

    base = model_options if model_options is not None else model.model_options
    to = dict(base.get("transformer_options", {}))
    patches = dict(to.get("patches", {}))
    patches["middle_patch"] = [*patches.get("middle_patch", []), middle_patch(entry, x_in.shape, x_in.device)]
    return {**base, "transformer_options": {**to, "patches": patches}}


def _plain(c: Cond) -> bool:
    return c.area is None and c.weight is None and c.strength == 1.0


def predict(model, x: torch.Tensor, sigma: float, cond_sets: list[list[Cond]],
            plans: dict | None = None, model_options: dict | None = None) -> list[torch.Tensor]:
    """x0 predictions, one per cond set, each the weighted blend of its active entries.

    Call inside ``models_in_use(model)``; ``x`` is on the compute device. ``plans`` caches the
    batched inputs by the set of active entries, so they are built once per run, not per step.
    ``model_options`` (default: the MODEL's) carry the UNet patches and wrappers.
    """
    throw_if_interrupted()
    batch = x.shape[0]
    device = x.device
    jobs = [(i, c) for i, conds in enumerate(cond_sets) for c in conds if c.active(sigma)]
    jobs = fill_defaults(jobs, cond_sets, x, sigma, plans)
    key = (tuple((i, id(c)) for i, c in jobs), tuple(x.shape))
    groups = plans.get(key) if plans is not None else None
    if groups is None:
        groups = _plan(jobs, x)
        if plans is not None:
            plans[key] = groups
    # The usual case (one plain entry per set) needs no blending.
    per_set = [sum(1 for i, _ in jobs if i == s) for s in range(len(cond_sets))]
    direct = all(n == 1 for n in per_set) and all(_plain(c) for _, c in jobs)
    outputs: list = [None] * len(cond_sets)
    # Only used when blending (not ``direct``); allocating them is cheap next to a UNet call.
    sums: list[torch.Tensor] = []
    counts: list[torch.Tensor] = []
    if not direct:
        sums = [torch.zeros_like(x) for _ in cond_sets]
        counts = [torch.full_like(x, 1e-37) for _ in cond_sets]
    for group in groups:
        x_in = torch.cat([_piece_input(x, c) for _, c in group.jobs])
        controls = [c.controls for _, c in group.jobs]
        options = model_options if group.gligen is None else _with_gligen(model, model_options, group.gligen, x_in)
        # cond_or_uncond: which set each slice of the batch belongs to (0 positive, 1 negative).
        with hooks_applied(model, group.hooks, sigma, plans):
            x0 = model.denoise_batch(x_in, float(sigma), group.context, pooled=group.pooled,
                                     time_ids=group.time_ids, controls=controls if any(controls) else None,
                                     concat=group.concat, model_options=options,
                                     cond_or_uncond=[i for i, _ in group.jobs])
        for k, (set_index, c) in enumerate(group.jobs):
            piece = x0[k * batch:(k + 1) * batch]
            if direct:
                outputs[set_index] = piece
                continue
            mult = c.strength * (c.weight.to(device) if c.weight is not None else torch.ones_like(piece[:, :1]))
            if c.area is None:
                sums[set_index] += piece * mult
                counts[set_index] += mult.expand_as(piece)
            else:
                h, w, y, xx = c.area
                sums[set_index][:, :, y:y + h, xx:xx + w] += piece * mult
                counts[set_index][:, :, y:y + h, xx:xx + w] += mult.expand_as(piece)
    if direct:
        return outputs
    return [s / n for s, n in zip(sums, counts, strict=True)]


class Guided:
    """``denoise(x, sigma) -> x0`` with classifier-free guidance (negative skipped at cfg 1).

    ``last_uncond`` keeps the unguided prediction of the last call, for the CFG++ samplers.
    """

    def __init__(self, model, positive: list[Cond], negative: list[Cond], cfg: float):
        self.model, self.positive, self.negative, self.cfg = model, positive, negative, cfg
        self.plans: dict = {}
        self.last_uncond = None

    def __call__(self, x, sigma):
        if self.cfg == 1.0:
            out = predict(self.model, x, sigma, [self.positive], self.plans)[0]
            self.last_uncond = out
            return out
        cond, uncond = predict(self.model, x, sigma, [self.positive, self.negative], self.plans)
        self.last_uncond = uncond
        return uncond + (cond - uncond) * self.cfg


def guided(model, positive: list[Cond], negative: list[Cond], cfg: float) -> Guided:
    return Guided(model, positive, negative, cfg)
