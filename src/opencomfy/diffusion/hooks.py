"""Hooks: LoRA weights attached to conditioning, with keyframed strength (ComfyUI's
``comfy.hooks``), and their application while sampling.

A HOOKS value is a :class:`HookGroup` of :class:`WeightHook`\\ s. A conditioning entry carries one
under ``"hooks"``; while sampling, entries are batched per hook group, and the UNet runs each
batch with that group's LoRA weights added (the other entries, and the negative prompt unless it
is hooked too, see the plain weights). A hook's strength follows its :class:`HookKeyframeGroup`:
the first keyframe applies from the start, each later one from its ``start_percent`` (and every
keyframe with ``guarantee_steps`` holds for at least that many steps).

Entries marked ``"default"`` (ConditioningSetDefaultCombine) only fill the part of the image the
other entries of their prompt do not cover.
"""

from __future__ import annotations

import contextlib
import math
import uuid

import torch

INTERPOLATIONS = ("linear", "ease_in", "ease_out", "ease_in_out")


class HookKeyframe:
    """From ``start_percent`` on, the hook's strength is multiplied by ``strength``."""

    def __init__(self, strength: float, start_percent: float = 0.0, guarantee_steps: int = 1):
        self.strength = float(strength)
        self.start_percent = float(start_percent)
        self.guarantee_steps = int(guarantee_steps)

    def __repr__(self) -> str:
        return f"<HookKeyframe {self.strength} from {self.start_percent}>"


class HookKeyframeGroup:
    """HOOK_KEYFRAMES: keyframes sorted by start (stable for equal starts)."""

    def __init__(self):
        self.keyframes: list[HookKeyframe] = []

    def add(self, keyframe: HookKeyframe) -> None:
        self.keyframes.append(keyframe)
        self.keyframes.sort(key=lambda k: k.start_percent)

    def clone(self) -> "HookKeyframeGroup":
        out = HookKeyframeGroup()
        out.keyframes = list(self.keyframes)
        return out

    def is_empty(self) -> bool:
        return not self.keyframes


class WeightHook:
    """LoRA weights for the model (``strength_model``) and the text encoder (``strength_clip``).

    ``lora`` is a LoRA state dict; ``model_weights`` / ``clip_weights`` (model as LoRA) are
    weights by ComfyUI key, added at the hook's strength. ``ref`` identifies the hook across
    clones (a clone only differs in its keyframes)."""

    def __init__(self, *, strength_model: float = 1.0, strength_clip: float = 1.0, lora: dict | None = None,
                 model_weights: dict | None = None, clip_weights: dict | None = None):
        self.strength_model = float(strength_model)
        self.strength_clip = float(strength_clip)
        self.lora = lora
        self.model_weights = model_weights
        self.clip_weights = clip_weights
        self.keyframes = HookKeyframeGroup()
        self.ref = uuid.uuid4()
        self._patches: dict = {}     # id of the patched module -> patch (shared by clones)

    def clone(self) -> "WeightHook":
        out = WeightHook.__new__(WeightHook)
        out.__dict__.update(self.__dict__)
        return out

    def __eq__(self, other) -> bool:
        return isinstance(other, WeightHook) and other.ref == self.ref

    def __hash__(self) -> int:
        return hash(self.ref)

    def unet_patch(self, model):
        """The weight patch of this hook for ``model``'s UNet (built once per UNet)."""
        unet = model.model.diffusion_model
        patch = self._patches.get(id(unet))
        if patch is None:
            if self.lora is not None:
                from opencomfy.diffusion.lora import LoraFile

                patch = LoraFile(self.lora).for_unet(unet)
            else:
                from opencomfy.diffusion.weight_patches import WeightPatch

                patch = WeightPatch.from_comfy(model, self.model_weights or {}, 1.0, 1.0)
            self._patches[id(unet)] = patch
        return patch

    def clip_patches(self, clip) -> list:
        """The weight patches of this hook for each tower of ``clip``."""
        key = ("clip", *(id(m) for m in clip.modules()))
        patches = self._patches.get(key)
        if patches is None:
            if self.lora is not None:
                from opencomfy.diffusion.lora import LoraFile

                patches = LoraFile(self.lora).for_text_encoder(clip)
            else:
                patches = _clip_weight_patches(clip, self.clip_weights or {})
            self._patches[key] = patches
        return patches


def _clip_weight_patches(clip, weights: dict) -> list:
    from opencomfy.diffusion.merge import comfy_clip_name
    from opencomfy.diffusion.weight_patches import WeightPatch

    out = []
    for part in clip.parts:
        prefix = f"clip_{part.key}.transformer."
        entries = {}
        for name, weight in part.model.state_dict().items():
            other = weights.get(prefix + comfy_clip_name(name))
            if other is not None and other.shape == weight.shape:
                entries[name] = ("diff", other, 1.0, 1.0)
        if entries:
            out.append(WeightPatch(part.model, entries, list(entries)))
    return out


class HookGroup:
    """HOOKS: the hooks a conditioning entry (or a CLIP) carries, without duplicates."""

    def __init__(self, hooks: list | None = None):
        self.hooks: list[WeightHook] = []
        for hook in hooks or ():
            self.add(hook)

    def add(self, hook: WeightHook) -> None:
        if hook not in self.hooks:
            self.hooks.append(hook)

    def clone(self) -> "HookGroup":
        return HookGroup([h.clone() for h in self.hooks])

    def clone_and_combine(self, other: "HookGroup") -> "HookGroup":
        out = self.clone()
        for hook in other.hooks:
            out.add(hook.clone())
        return out

    def set_keyframes_on_hooks(self, keyframes: HookKeyframeGroup | None) -> None:
        shared = keyframes.clone() if keyframes is not None else HookKeyframeGroup()
        for hook in self.hooks:
            hook.keyframes = shared

    def key(self) -> tuple:
        """What tells two groups apart when batching: the hooks and their keyframes."""
        return tuple((h.ref, id(h.keyframes)) for h in self.hooks)

    def __len__(self) -> int:
        return len(self.hooks)

    @staticmethod
    def combine_all(groups) -> "HookGroup | None":
        present = [g for g in groups if g is not None]
        if not present:
            return None
        if len(present) == 1:
            return present[0]
        out = HookGroup()
        for group in present:
            for hook in group.hooks:
                out.add(hook.clone())
        return out


def interpolation_weights(start: float, end: float, length: int, method: str) -> list[float]:
    """``length`` values from ``start`` to ``end`` along ``method``'s curve."""
    if method not in INTERPOLATIONS:
        raise ValueError(f"unknown interpolation {method!r} (expected one of {', '.join(INTERPOLATIONS)})")
    index = torch.linspace(0, 1, length, dtype=torch.float64)
    if method == "linear":
        curve = index
    elif method == "ease_in":
        curve = index ** 2
    elif method == "ease_out":
        curve = 1 - (1 - index) ** 2
    else:
        curve = (1 - torch.cos(index * math.pi)) / 2
    return [float(v) for v in (start + (end - start) * curve).float()]


# --- CLIP ---------------------------------------------------------------------------------------

class _HookedClip:
    """Mixed into a CLIP's class by :func:`hooked_clip`: the encodings carry the hooks."""

    hooks_for_conds = None

    def encode_from_tokens(self, tokens, return_pooled=False, return_dict=False):
        out = super().encode_from_tokens(  # type: ignore[misc]  # (mixed into a CLIP class)
            tokens, return_pooled=return_pooled, return_dict=return_dict)
        if return_dict and self.hooks_for_conds is not None:
            out["hooks"] = self.hooks_for_conds
        return out


_hooked_classes: dict[type, type] = {}


def hooked_clip(clip, hooks: HookGroup, *, apply_to_conds: bool, schedule_clip: bool):
    """A clone of ``clip`` encoding with the hooks' CLIP weights (``strength_clip``); with
    ``apply_to_conds`` the conditioning it encodes carries the hooks.

    Not scheduled, the keyframes do not apply to the CLIP (as in ComfyUI). Scheduled encoding
    (one encoding per keyframe) is supported only when the keyframes keep one strength."""
    if not hasattr(clip, "parts") or not hasattr(clip, "clone"):
        raise ValueError(f"SetClipHooks: this CLIP ({clip!r}) cannot take hooks")
    out = clip.clone()
    for hook in hooks.hooks:
        multiplier = 1.0
        if schedule_clip and not hook.keyframes.is_empty():
            strengths = {k.strength for k in hook.keyframes.keyframes}
            if len(strengths) > 1:
                raise NotImplementedError(
                    "SetClipHooks with schedule_clip: keyframes that change the CLIP's strength during "
                    "sampling are not supported yet (encode once per keyframe); turn schedule_clip off "
                    "or use keyframes of one strength")
            multiplier = strengths.pop()
        strength = hook.strength_clip * multiplier
        if strength != 0.0:
            out.patches.extend((patch, strength) for patch in hook.clip_patches(clip))
    if apply_to_conds:
        base = type(out)
        hooked = base if issubclass(base, _HookedClip) else _hooked_classes.get(base)
        if hooked is None:
            hooked = _hooked_classes[base] = type(f"Hooked{base.__name__}", (_HookedClip, base), {})
        out.__class__ = hooked
        out.hooks_for_conds = hooks
    return out


# --- sampling ----------------------------------------------------------------------------------

class _KeyframeState:
    """Which keyframe of one group is current during one sampling run."""

    def __init__(self):
        self.index = 0
        self.used_steps = 0
        self.sigma: float | None = None


def keyframe_strength(group: HookKeyframeGroup, sigma: float, schedule, state: _KeyframeState | None) -> float:
    """The keyframe multiplier at ``sigma``; advances ``state`` once per new sigma (without a
    state, the last keyframe whose start has passed)."""
    frames = group.keyframes
    if not frames:
        return 1.0
    starts = [schedule.percent_to_sigma(k.start_percent) for k in frames]
    if state is None:
        current = 0
        for i, start in enumerate(starts):
            if start >= sigma:
                current = i
        return frames[current].strength
    if state.sigma != sigma:
        if state.used_steps >= frames[state.index].guarantee_steps:
            for i in range(state.index + 1, len(frames)):
                if starts[i] < sigma:
                    break
                state.index, state.used_steps = i, 0
                if frames[i].guarantee_steps > 0:
                    break
        state.used_steps += 1
        state.sigma = sigma
    return frames[state.index].strength


@contextlib.contextmanager
def hooks_applied(model, hooks: HookGroup | None, sigma: float, run: dict | None):
    """Within the block, ``model``'s UNet carries the hooks' LoRA weights at their strength at
    ``sigma`` (``run`` keeps the keyframe state of one sampling run)."""
    if not hooks:
        yield
        return
    states = run.setdefault("hook_keyframes", {}) if run is not None else None
    schedule = model.schedule
    restores = []
    try:
        for hook in hooks.hooks:
            state = None
            if states is not None:
                state = states.setdefault(id(hook.keyframes), _KeyframeState())
            strength = hook.strength_model * keyframe_strength(hook.keyframes, sigma, schedule, state)
            if strength != 0.0:
                restores.append(hook.unet_patch(model).apply(strength))
        yield
    finally:
        for restore in reversed(restores):
            restore()


def hooks_key(cond) -> tuple:
    hooks = cond.options.get("hooks")
    return hooks.key() if hooks else ()


def fill_defaults(jobs: list, cond_sets: list, x: torch.Tensor, sigma: float, run: dict | None) -> list:
    """``jobs`` without the ``default`` entries, plus each set's default entries weighted by the
    part of the latent the set's other active entries leave uncovered (nothing when covered)."""
    plain = [(i, c) for i, c in jobs if not c.options.get("default")]
    defaults = [(i, c) for i, c in jobs if c.options.get("default")]
    if not defaults:
        return plain
    cache = run.setdefault("default_conds", {}) if run is not None else {}
    out = list(plain)
    for set_index in range(len(cond_sets)):
        own = [c for i, c in defaults if i == set_index]
        if not own:
            continue
        remaining = torch.ones(1, 1, x.shape[2], x.shape[3], device=x.device)
        for i, c in plain:
            if i != set_index:
                continue
            mult = c.strength * (c.weight.to(x.device)[:1] if c.weight is not None
                                 else torch.ones(1, 1, *(c.area[:2] if c.area else x.shape[2:]), device=x.device))
            if c.area is None:
                remaining = remaining - mult
            else:
                h, w, y, xx = c.area
                remaining[:, :, y:y + h, xx:xx + w] -= mult
        remaining = remaining.clamp(min=0)
        if float(remaining.max()) == 0.0:
            continue
        for c in own:
            filled = cache.get(id(c))
            if filled is None:
                import copy

                filled = copy.copy(c)
                filled.area, filled.strength = None, 1.0
                cache[id(c)] = filled
            filled.weight = remaining
            out.append((set_index, filled))
    return out
