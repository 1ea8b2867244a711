"""Hook nodes (ComfyUI's ``nodes_hooks``): LoRA weights attached to conditioning, keyframed
strength, and the conditioning property nodes that attach them. See
:mod:`opencomfy.diffusion.hooks` for how they apply while sampling."""

from __future__ import annotations

import logging

from opencomfy.compat import folder_paths
from opencomfy.diffusion import available

log = logging.getLogger(__name__)

_MODULE = "comfy_extras.nodes_hooks"
_STRENGTH = ("FLOAT", {"default": 1.0, "min": -20.0, "max": 20.0, "step": 0.01})
_PERCENT = {"min": 0.0, "max": 1.0, "step": 0.001}


class _HookNode:
    EXPERIMENTAL = True
    RETURN_TYPES = ("HOOKS",)
    CATEGORY = "advanced/hooks/create"


def _cached(kind: str, path: str, load):
    from opencomfy.diffusion import cache

    return cache.get_or_load(cache.file_key(path, kind), load)


def _prev(prev_hooks):
    from opencomfy.diffusion.hooks import HookGroup

    return HookGroup() if prev_hooks is None else prev_hooks.clone()


class CreateHookLora(_HookNode):
    """A hook that adds a LoRA file's weights where it is attached."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"lora_name": (folder_paths.get_filename_list("loras"),),
                             "strength_model": _STRENGTH, "strength_clip": _STRENGTH},
                "optional": {"prev_hooks": ("HOOKS",)}}

    FUNCTION = "create_hook"

    def create_hook(self, lora_name, strength_model, strength_clip, prev_hooks=None):
        from opencomfy.diffusion.hooks import HookGroup, WeightHook
        from opencomfy.weights import read_state_dict

        prev = _prev(prev_hooks)
        if strength_model == 0 and strength_clip == 0:
            return (prev,)
        path = folder_paths.get_full_path_or_raise("loras", lora_name)
        lora = _cached("lora-state", path, lambda: read_state_dict(path))
        hook = WeightHook(strength_model=strength_model, strength_clip=strength_clip, lora=lora)
        return (prev.clone_and_combine(HookGroup([hook])),)


class CreateHookLoraModelOnly(CreateHookLora):
    """A LoRA hook for the model only."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"lora_name": (folder_paths.get_filename_list("loras"),),
                             "strength_model": _STRENGTH},
                "optional": {"prev_hooks": ("HOOKS",)}}

    FUNCTION = "create_hook_model_only"

    def create_hook_model_only(self, lora_name, strength_model, prev_hooks=None):
        return self.create_hook(lora_name, strength_model, 0, prev_hooks)


class CreateHookModelAsLora(_HookNode):
    """A hook that adds a checkpoint's weights (a saved difference) where it is attached."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"ckpt_name": (folder_paths.get_filename_list("checkpoints"),),
                             "strength_model": _STRENGTH, "strength_clip": _STRENGTH},
                "optional": {"prev_hooks": ("HOOKS",)}}

    FUNCTION = "create_hook"

    def create_hook(self, ckpt_name, strength_model, strength_clip, prev_hooks=None):
        from opencomfy.diffusion.hooks import HookGroup, WeightHook
        from opencomfy.diffusion.loading import load_checkpoint_file
        from opencomfy.diffusion.merge import clip_weights, model_weights

        prev = _prev(prev_hooks)
        path = folder_paths.get_full_path_or_raise("checkpoints", ckpt_name)

        def load():
            model, clip, _vae = load_checkpoint_file(path)
            return (model_weights(model) if model is not None else {},
                    clip_weights(clip) if clip is not None else None)

        weights_model, weights_clip = _cached("model-as-lora", path, load)
        hook = WeightHook(strength_model=strength_model, strength_clip=strength_clip,
                          model_weights=weights_model, clip_weights=weights_clip)
        return (prev.clone_and_combine(HookGroup([hook])),)


class CreateHookModelAsLoraModelOnly(CreateHookModelAsLora):
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"ckpt_name": (folder_paths.get_filename_list("checkpoints"),),
                             "strength_model": _STRENGTH},
                "optional": {"prev_hooks": ("HOOKS",)}}

    FUNCTION = "create_hook_model_only"

    def create_hook_model_only(self, ckpt_name, strength_model, prev_hooks=None):
        return self.create_hook(ckpt_name, strength_model, 0, prev_hooks)


class SetClipHooks:
    """Encode with the hooks' CLIP weights; optionally attach the hooks to the conditioning."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"clip": ("CLIP",), "apply_to_conds": ("BOOLEAN", {"default": True}),
                             "schedule_clip": ("BOOLEAN", {"default": False})},
                "optional": {"hooks": ("HOOKS",)}}

    EXPERIMENTAL = True
    RETURN_TYPES = ("CLIP",)
    FUNCTION = "apply_hooks"
    CATEGORY = "advanced/hooks/clip"

    def apply_hooks(self, clip, apply_to_conds, schedule_clip, hooks=None):
        from opencomfy.diffusion.hooks import hooked_clip

        if hooks is None:
            return (clip,)
        return (hooked_clip(clip, hooks, apply_to_conds=apply_to_conds, schedule_clip=schedule_clip),)


class SetHookKeyframes:
    """Give every hook of a group the same keyframes."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"hooks": ("HOOKS",)}, "optional": {"hook_kf": ("HOOK_KEYFRAMES",)}}

    EXPERIMENTAL = True
    RETURN_TYPES = ("HOOKS",)
    FUNCTION = "set_hook_keyframes"
    CATEGORY = "advanced/hooks/scheduling"

    def set_hook_keyframes(self, hooks, hook_kf=None):
        if hook_kf is not None:
            hooks = hooks.clone()
            hooks.set_keyframes_on_hooks(hook_kf)
        return (hooks,)


class CreateHookKeyframe:
    """One keyframe: from ``start_percent`` on, the strength is multiplied by ``strength_mult``."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"strength_mult": ("FLOAT", {"default": 1.0, "min": -20.0, "max": 20.0, "step": 0.01}),
                             "start_percent": ("FLOAT", {"default": 0.0, **_PERCENT})},
                "optional": {"prev_hook_kf": ("HOOK_KEYFRAMES",)}}

    EXPERIMENTAL = True
    RETURN_TYPES = ("HOOK_KEYFRAMES",)
    RETURN_NAMES = ("HOOK_KF",)
    FUNCTION = "create_hook_keyframe"
    CATEGORY = "advanced/hooks/scheduling"

    def create_hook_keyframe(self, strength_mult, start_percent, prev_hook_kf=None):
        from opencomfy.diffusion.hooks import HookKeyframe, HookKeyframeGroup

        group = HookKeyframeGroup() if prev_hook_kf is None else prev_hook_kf.clone()
        group.add(HookKeyframe(strength=strength_mult, start_percent=start_percent))
        return (group,)


def _keyframes_along(strengths, percents, prev_hook_kf, print_keyframes: bool):
    from opencomfy.diffusion.hooks import HookKeyframe, HookKeyframeGroup

    group = HookKeyframeGroup() if prev_hook_kf is None else prev_hook_kf.clone()
    for i, (percent, strength) in enumerate(zip(percents, strengths, strict=True)):
        # Only the first keyframe is held for a step; the others switch as soon as reached.
        group.add(HookKeyframe(strength=strength, start_percent=percent, guarantee_steps=1 if i == 0 else 0))
        if print_keyframes:
            log.info("hook keyframe: start_percent %s -> strength %s", percent, strength)
    return (group,)


class CreateHookKeyframesInterpolated:
    """``keyframes_count`` keyframes evenly spread between the percents, their strengths along
    an easing curve."""

    @classmethod
    def INPUT_TYPES(cls):
        strength = {"min": 0.0, "max": 10.0, "step": 0.001}
        return {"required": {
            "strength_start": ("FLOAT", {"default": 1.0, **strength}),
            "strength_end": ("FLOAT", {"default": 1.0, **strength}),
            "interpolation": (["linear", "ease_in", "ease_out", "ease_in_out"],),
            "start_percent": ("FLOAT", {"default": 0.0, **_PERCENT}),
            "end_percent": ("FLOAT", {"default": 1.0, **_PERCENT}),
            "keyframes_count": ("INT", {"default": 5, "min": 2, "max": 100, "step": 1}),
            "print_keyframes": ("BOOLEAN", {"default": False}),
        }, "optional": {"prev_hook_kf": ("HOOK_KEYFRAMES",)}}

    EXPERIMENTAL = True
    RETURN_TYPES = ("HOOK_KEYFRAMES",)
    RETURN_NAMES = ("HOOK_KF",)
    FUNCTION = "create_hook_keyframes"
    CATEGORY = "advanced/hooks/scheduling"

    def create_hook_keyframes(self, strength_start, strength_end, interpolation, start_percent, end_percent,
                              keyframes_count, print_keyframes=False, prev_hook_kf=None):
        from opencomfy.diffusion.hooks import interpolation_weights

        percents = interpolation_weights(start_percent, end_percent, keyframes_count, "linear")
        strengths = interpolation_weights(strength_start, strength_end, keyframes_count, interpolation)
        return _keyframes_along(strengths, percents, prev_hook_kf, print_keyframes)


class CreateHookKeyframesFromFloats:
    """One keyframe per value of a FLOATS list, spread evenly between the percents."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "floats_strength": ("FLOATS", {"default": -1, "min": -1, "step": 0.001, "forceInput": True}),
            "start_percent": ("FLOAT", {"default": 0.0, **_PERCENT}),
            "end_percent": ("FLOAT", {"default": 1.0, **_PERCENT}),
            "print_keyframes": ("BOOLEAN", {"default": False}),
        }, "optional": {"prev_hook_kf": ("HOOK_KEYFRAMES",)}}

    EXPERIMENTAL = True
    RETURN_TYPES = ("HOOK_KEYFRAMES",)
    RETURN_NAMES = ("HOOK_KF",)
    FUNCTION = "create_hook_keyframes"
    CATEGORY = "advanced/hooks/scheduling"

    def create_hook_keyframes(self, floats_strength, start_percent, end_percent, print_keyframes=False,
                              prev_hook_kf=None):
        from opencomfy.diffusion.hooks import interpolation_weights

        if isinstance(floats_strength, (int, float)):
            values = [float(floats_strength)]
        else:
            try:
                values = [float(v) for v in floats_strength]
            except (TypeError, ValueError) as exc:
                raise ValueError("floats_strength must be a number or a list of numbers, got "
                                 f"{type(floats_strength).__name__}") from exc
        if not values:
            raise ValueError("floats_strength is empty")
        percents = interpolation_weights(start_percent, end_percent, len(values), "linear")
        return _keyframes_along(values, percents, prev_hook_kf, print_keyframes)


def _combine_node(count: int):
    letters = "ABCDEFGH"[:count]

    class CombineHooks:
        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {}, "optional": {f"hooks_{x}": ("HOOKS",) for x in letters}}

        EXPERIMENTAL = True
        RETURN_TYPES = ("HOOKS",)
        FUNCTION = "combine_hooks"
        CATEGORY = "advanced/hooks/combine"

        def combine_hooks(self, **hooks):
            from opencomfy.diffusion.hooks import HookGroup

            return (HookGroup.combine_all([hooks.get(f"hooks_{x}") for x in letters]),)

    CombineHooks.__name__ = CombineHooks.__qualname__ = f"CombineHooks{count}"
    CombineHooks.__doc__ = f"Merge up to {count} hook groups into one."
    return CombineHooks


if available():
    from opencomfy.nodes.hooks_conditioning import CONDITIONING_NODES
else:
    CONDITIONING_NODES = []

NODES = [
    ("CreateHookLora", CreateHookLora, "Create Hook LoRA", _MODULE),
    ("CreateHookLoraModelOnly", CreateHookLoraModelOnly, "Create Hook LoRA (MO)", _MODULE),
    ("CreateHookModelAsLora", CreateHookModelAsLora, "Create Hook Model as LoRA", _MODULE),
    ("CreateHookModelAsLoraModelOnly", CreateHookModelAsLoraModelOnly, "Create Hook Model as LoRA (MO)", _MODULE),
    ("SetClipHooks", SetClipHooks, "Set CLIP Hooks", _MODULE),
    ("SetHookKeyframes", SetHookKeyframes, "Set Hook Keyframes", _MODULE),
    ("CreateHookKeyframe", CreateHookKeyframe, "Create Hook Keyframe", _MODULE),
    ("CreateHookKeyframesInterpolated", CreateHookKeyframesInterpolated, "Create Hook Keyframes Interp.", _MODULE),
    ("CreateHookKeyframesFromFloats", CreateHookKeyframesFromFloats, "Create Hook Keyframes From Floats",
     _MODULE),
    ("CombineHooks2", _combine_node(2), "Combine Hooks [2]", _MODULE),
    ("CombineHooks4", _combine_node(4), "Combine Hooks [4]", _MODULE),
    ("CombineHooks8", _combine_node(8), "Combine Hooks [8]", _MODULE),
    *CONDITIONING_NODES,
]

if not available():     # the model nodes need the optional diffusion extra
    NODES = []
