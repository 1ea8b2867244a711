"""A pack that imports ComfyUI's model modules at the top, as many popular packs do, although
only one of its nodes needs a model."""

import comfy.model_management
import comfy.sample
import comfy.sd
import comfy.utils
import folder_paths
from comfy.model_patcher import ModelPatcher


class ModelPackCheckpoint:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"ckpt_name": ("STRING", {"default": "model.safetensors"})}}

    RETURN_TYPES = ("MODEL",)
    FUNCTION = "load"
    CATEGORY = "model_pack"

    def load(self, ckpt_name):
        model, *_ = comfy.sd.load_checkpoint_guess_config(ckpt_name)
        assert isinstance(model, ModelPatcher)
        return (model,)


class ModelPackBrightness:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",),
                             "factor": ("FLOAT", {"default": 2.0, "min": 0.0, "max": 10.0})}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "run"
    CATEGORY = "model_pack"

    def run(self, image, factor):
        return ((image * factor).clamp(0, 1),)


NODE_CLASS_MAPPINGS = {"ModelPackCheckpoint": ModelPackCheckpoint,
                       "ModelPackBrightness": ModelPackBrightness}
