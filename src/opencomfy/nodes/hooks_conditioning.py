"""The conditioning nodes of ComfyUI's hooks set: attach hooks, a mask (with its strength) and
a timestep range to conditioning, combine pairs, and mark "default" conditioning."""

from __future__ import annotations

_MODULE = "comfy_extras.nodes_hooks"
_PROPS_STRENGTH = ("FLOAT", {"default": 1.0, "min": 0.0, "max": 10.0, "step": 0.01})
_AREAS = (["default", "mask bounds"],)
_OPTIONAL = {"mask": ("MASK",), "hooks": ("HOOKS",), "timesteps": ("TIMESTEPS_RANGE",)}


def _set(cond: list, values: dict) -> list:
    return [[t, {**opts, **values}] for t, opts in cond]


def with_hooks(cond: list, hooks) -> list:
    """Each entry with ``hooks`` added to the hooks it already carries."""
    from opencomfy.diffusion.hooks import HookGroup

    if hooks is None:
        return cond
    return [[t, {**opts, "hooks": HookGroup.combine_all([opts.get("hooks"), hooks])}] for t, opts in cond]


def with_props(cond: list, *, strength: float, set_cond_area: str, mask=None, hooks=None,
               timesteps=None) -> list:
    """Hooks, then the mask (``strength`` is the mask's: without a mask it changes nothing, as
    in ComfyUI), then the timestep range."""
    cond = with_hooks(cond, hooks)
    if mask is not None:
        if mask.ndim < 3:
            mask = mask.unsqueeze(0)
        cond = _set(cond, {"mask": mask, "set_area_to_bounds": set_cond_area != "default",
                           "mask_strength": strength})
    if timesteps is not None:
        cond = _set(cond, {"start_percent": timesteps[0], "end_percent": timesteps[1]})
    return cond


def as_default(cond: list, hooks=None) -> list:
    return _set(with_hooks(cond, hooks), {"default": True})


class _Node:
    EXPERIMENTAL = True
    FUNCTION = "run"


class ConditioningSetProperties(_Node):
    """Set hooks, mask and timestep range on conditioning."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"cond_NEW": ("CONDITIONING",), "strength": _PROPS_STRENGTH,
                             "set_cond_area": _AREAS}, "optional": dict(_OPTIONAL)}

    RETURN_TYPES = ("CONDITIONING",)
    CATEGORY = "advanced/hooks/cond single"

    def run(self, cond_NEW, strength, set_cond_area, mask=None, hooks=None, timesteps=None):  # noqa: N803
        return (with_props(cond_NEW, strength=strength, set_cond_area=set_cond_area, mask=mask, hooks=hooks,
                           timesteps=timesteps),)


class ConditioningSetPropertiesAndCombine(_Node):
    """Set properties on new conditioning and append it to existing conditioning."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"cond": ("CONDITIONING",), "cond_NEW": ("CONDITIONING",),
                             "strength": _PROPS_STRENGTH, "set_cond_area": _AREAS}, "optional": dict(_OPTIONAL)}

    RETURN_TYPES = ("CONDITIONING",)
    CATEGORY = "advanced/hooks/cond single"

    def run(self, cond, cond_NEW, strength, set_cond_area, mask=None, hooks=None, timesteps=None):  # noqa: N803
        return (cond + with_props(cond_NEW, strength=strength, set_cond_area=set_cond_area, mask=mask,
                                  hooks=hooks, timesteps=timesteps),)


class PairConditioningSetProperties(_Node):
    """ConditioningSetProperties on a positive/negative pair."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"positive_NEW": ("CONDITIONING",), "negative_NEW": ("CONDITIONING",),
                             "strength": _PROPS_STRENGTH, "set_cond_area": _AREAS}, "optional": dict(_OPTIONAL)}

    RETURN_TYPES = ("CONDITIONING", "CONDITIONING")
    RETURN_NAMES = ("positive", "negative")
    CATEGORY = "advanced/hooks/cond pair"

    def run(self, positive_NEW, negative_NEW, strength, set_cond_area, mask=None, hooks=None,  # noqa: N803
            timesteps=None):
        props = {"strength": strength, "set_cond_area": set_cond_area, "mask": mask, "hooks": hooks,
                 "timesteps": timesteps}
        return (with_props(positive_NEW, **props), with_props(negative_NEW, **props))


class PairConditioningSetPropertiesAndCombine(_Node):
    """PairConditioningSetProperties on the new pair, appended to the existing pair."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"positive": ("CONDITIONING",), "negative": ("CONDITIONING",),
                             "positive_NEW": ("CONDITIONING",), "negative_NEW": ("CONDITIONING",),
                             "strength": _PROPS_STRENGTH, "set_cond_area": _AREAS}, "optional": dict(_OPTIONAL)}

    RETURN_TYPES = ("CONDITIONING", "CONDITIONING")
    RETURN_NAMES = ("positive", "negative")
    CATEGORY = "advanced/hooks/cond pair"

    def run(self, positive, negative, positive_NEW, negative_NEW, strength, set_cond_area,  # noqa: N803
            mask=None, hooks=None, timesteps=None):
        props = {"strength": strength, "set_cond_area": set_cond_area, "mask": mask, "hooks": hooks,
                 "timesteps": timesteps}
        return (positive + with_props(positive_NEW, **props), negative + with_props(negative_NEW, **props))


class PairConditioningCombine(_Node):
    """Append pair B to pair A."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"positive_A": ("CONDITIONING",), "negative_A": ("CONDITIONING",),
                             "positive_B": ("CONDITIONING",), "negative_B": ("CONDITIONING",)}}

    RETURN_TYPES = ("CONDITIONING", "CONDITIONING")
    RETURN_NAMES = ("positive", "negative")
    CATEGORY = "advanced/hooks/cond pair"

    def run(self, positive_A, negative_A, positive_B, negative_B):  # noqa: N803
        return (positive_A + positive_B, negative_A + negative_B)


class PairConditioningSetDefaultCombine(_Node):
    """Append a default pair: it fills only what the pair's other entries leave uncovered."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"positive": ("CONDITIONING",), "negative": ("CONDITIONING",),
                             "positive_DEFAULT": ("CONDITIONING",), "negative_DEFAULT": ("CONDITIONING",)},
                "optional": {"hooks": ("HOOKS",)}}

    RETURN_TYPES = ("CONDITIONING", "CONDITIONING")
    RETURN_NAMES = ("positive", "negative")
    CATEGORY = "advanced/hooks/cond pair"

    def run(self, positive, negative, positive_DEFAULT, negative_DEFAULT, hooks=None):  # noqa: N803
        return (positive + as_default(positive_DEFAULT, hooks), negative + as_default(negative_DEFAULT, hooks))


class ConditioningSetDefaultCombine(_Node):
    """Append default conditioning: it fills only what the other entries leave uncovered."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"cond": ("CONDITIONING",), "cond_DEFAULT": ("CONDITIONING",)},
                "optional": {"hooks": ("HOOKS",)}}

    RETURN_TYPES = ("CONDITIONING",)
    CATEGORY = "advanced/hooks/cond single"

    def run(self, cond, cond_DEFAULT, hooks=None):  # noqa: N803
        return (cond + as_default(cond_DEFAULT, hooks),)


class ConditioningTimestepsRange(_Node):
    """A timestep range, and the ranges before and after it."""

    @classmethod
    def INPUT_TYPES(cls):
        percent = {"min": 0.0, "max": 1.0, "step": 0.001}
        return {"required": {"start_percent": ("FLOAT", {"default": 0.0, **percent}),
                             "end_percent": ("FLOAT", {"default": 1.0, **percent})}}

    RETURN_TYPES = ("TIMESTEPS_RANGE", "TIMESTEPS_RANGE", "TIMESTEPS_RANGE")
    RETURN_NAMES = ("TIMESTEPS_RANGE", "BEFORE_RANGE", "AFTER_RANGE")
    CATEGORY = "advanced/hooks"

    def run(self, start_percent, end_percent):
        return ((start_percent, end_percent), (0.0, start_percent), (end_percent, 1.0))


CONDITIONING_NODES = [
    ("ConditioningSetProperties", ConditioningSetProperties, "Cond Set Props", _MODULE),
    ("ConditioningSetPropertiesAndCombine", ConditioningSetPropertiesAndCombine, "Cond Set Props Combine", _MODULE),
    ("PairConditioningSetProperties", PairConditioningSetProperties, "Cond Pair Set Props", _MODULE),
    ("PairConditioningSetPropertiesAndCombine", PairConditioningSetPropertiesAndCombine,
     "Cond Pair Set Props Combine", _MODULE),
    ("PairConditioningCombine", PairConditioningCombine, "Cond Pair Combine", _MODULE),
    ("PairConditioningSetDefaultCombine", PairConditioningSetDefaultCombine, "Cond Pair Set Default Combine",
     _MODULE),
    ("ConditioningSetDefaultCombine", ConditioningSetDefaultCombine, "Cond Set Default Combine", _MODULE),
    ("ConditioningTimestepsRange", ConditioningTimestepsRange, "Timesteps Range", _MODULE),
]
