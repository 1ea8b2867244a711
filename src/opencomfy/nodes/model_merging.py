"""Model and CLIP merging nodes (ComfyUI's ``nodes_model_merging`` and its per-architecture
block merges). The arithmetic is in :mod:`opencomfy.diffusion.merge`."""

from __future__ import annotations

from opencomfy.diffusion import available

_RATIO = ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01})
_MULTIPLIER = ("FLOAT", {"default": 1.0, "min": -10.0, "max": 10.0, "step": 0.01})
_MODULE = "comfy_extras.nodes_model_merging"
_SPECIFIC_MODULE = "comfy_extras.nodes_model_merging_model_specific"


class ModelMergeSimple:
    """Blend two models: ``ratio`` of the first, the rest of the second."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model1": ("MODEL",), "model2": ("MODEL",), "ratio": _RATIO}}

    RETURN_TYPES = ("MODEL",)
    FUNCTION = "merge"
    CATEGORY = "advanced/model_merging"

    def merge(self, model1, model2, ratio):
        from opencomfy.diffusion.merge import merge_simple

        return (merge_simple(model1, model2, ratio),)


class ModelMergeSubtract:
    """``(model1 - model2) * multiplier``: the difference a fine-tune made, scaled."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model1": ("MODEL",), "model2": ("MODEL",), "multiplier": _MULTIPLIER}}

    RETURN_TYPES = ("MODEL",)
    FUNCTION = "merge"
    CATEGORY = "advanced/model_merging"

    def merge(self, model1, model2, multiplier):
        from opencomfy.diffusion.merge import merge_subtract

        return (merge_subtract(model1, model2, multiplier),)


class ModelMergeAdd:
    """``model1 + model2`` (typically a model plus a saved difference)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model1": ("MODEL",), "model2": ("MODEL",)}}

    RETURN_TYPES = ("MODEL",)
    FUNCTION = "merge"
    CATEGORY = "advanced/model_merging"

    def merge(self, model1, model2):
        from opencomfy.diffusion.merge import merge_add

        return (merge_add(model1, model2),)


class ModelMergeBlocks:
    """A merge with one ratio per group of UNet blocks, matched by key prefix (the longest wins;
    keys matching no prefix take the first ratio)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model1": ("MODEL",), "model2": ("MODEL",),
                             "input": _RATIO, "middle": _RATIO, "out": _RATIO}}

    RETURN_TYPES = ("MODEL",)
    FUNCTION = "merge"
    CATEGORY = "advanced/model_merging"

    def merge(self, model1, model2, **kwargs):
        from opencomfy.diffusion.merge import merge_blocks

        # The prefixes in the order the node declares them: the first is the default ratio.
        order = [name for name in self.INPUT_TYPES()["required"] if name not in ("model1", "model2")]
        ratios = [(name, float(kwargs[name])) for name in order if name in kwargs]
        return (merge_blocks(model1, model2, ratios),)


def _block_inputs(prefixes: list[str]) -> dict:
    inputs: dict = {"model1": ("MODEL",), "model2": ("MODEL",)}
    for prefix in prefixes:
        inputs[prefix] = _RATIO
    return {"required": inputs}


def _sd_prefixes(dot: str, levels: int) -> list[str]:
    return (["time_embed.", "label_emb."]
            + [f"input_blocks.{i}{dot}" for i in range(levels)]
            + [f"middle_block.{i}{dot}" for i in range(3)]
            + [f"output_blocks.{i}{dot}" for i in range(levels)]
            + ["out."])


class ModelMergeSD1(ModelMergeBlocks):
    """Block merge with a ratio for each of SD 1.x's UNet blocks."""

    PREFIXES = _sd_prefixes(".", 12)

    @classmethod
    def INPUT_TYPES(cls):
        return _block_inputs(cls.PREFIXES)

    CATEGORY = "advanced/model_merging/model_specific"


class ModelMergeSD2(ModelMergeSD1):
    """Block merge for SD 2.x (the same blocks as SD 1.x)."""


class ModelMergeSDXL(ModelMergeSD1):
    """Block merge with a ratio for each of SDXL's UNet blocks."""

    PREFIXES = _sd_prefixes("", 9)


class CLIPMergeSimple:
    """Blend two text encoders: ``ratio`` of the first, the rest of the second."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"clip1": ("CLIP",), "clip2": ("CLIP",), "ratio": _RATIO}}

    RETURN_TYPES = ("CLIP",)
    FUNCTION = "merge"
    CATEGORY = "advanced/model_merging"

    def merge(self, clip1, clip2, ratio):
        from opencomfy.diffusion.merge import clip_merge_simple

        return (clip_merge_simple(clip1, clip2, ratio),)


class CLIPMergeSubtract:
    """``(clip1 - clip2) * multiplier``."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"clip1": ("CLIP",), "clip2": ("CLIP",), "multiplier": _MULTIPLIER}}

    RETURN_TYPES = ("CLIP",)
    FUNCTION = "merge"
    CATEGORY = "advanced/model_merging"

    def merge(self, clip1, clip2, multiplier):
        from opencomfy.diffusion.merge import clip_merge_subtract

        return (clip_merge_subtract(clip1, clip2, multiplier),)


class CLIPMergeAdd:
    """``clip1 + clip2``."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"clip1": ("CLIP",), "clip2": ("CLIP",)}}

    RETURN_TYPES = ("CLIP",)
    FUNCTION = "merge"
    CATEGORY = "advanced/model_merging"

    def merge(self, clip1, clip2):
        from opencomfy.diffusion.merge import clip_merge_add

        return (clip_merge_add(clip1, clip2),)


NODES = [
    ("ModelMergeSimple", ModelMergeSimple, "ModelMergeSimple", _MODULE),
    ("ModelMergeBlocks", ModelMergeBlocks, "ModelMergeBlocks", _MODULE),
    ("ModelMergeSubtract", ModelMergeSubtract, "ModelMergeSubtract", _MODULE),
    ("ModelMergeAdd", ModelMergeAdd, "ModelMergeAdd", _MODULE),
    ("CLIPMergeSimple", CLIPMergeSimple, "CLIPMergeSimple", _MODULE),
    ("CLIPMergeSubtract", CLIPMergeSubtract, "CLIPMergeSubtract", _MODULE),
    ("CLIPMergeAdd", CLIPMergeAdd, "CLIPMergeAdd", _MODULE),
    ("ModelMergeSD1", ModelMergeSD1, "ModelMergeSD1", _SPECIFIC_MODULE),
    ("ModelMergeSD2", ModelMergeSD2, "ModelMergeSD2", _SPECIFIC_MODULE),
    ("ModelMergeSDXL", ModelMergeSDXL, "ModelMergeSDXL", _SPECIFIC_MODULE),
]


if not available():     # the model nodes need the optional diffusion extra
    NODES = []
