"""ControlNet nodes (ComfyUI's ``nodes.py``): load a ControlNet, attach it to conditioning."""

from __future__ import annotations

from opencomfy.compat import folder_paths


def _attach(conditioning, apply):
    out = []
    for tensor, options in conditioning:
        new_options = dict(options)
        new_options["control"] = (*options.get("control", ()), apply)
        new_options["control_apply_to_uncond"] = False
        out.append([tensor, new_options])
    return out


class ControlNetLoader:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"control_net_name": (folder_paths.get_filename_list("controlnet"),)}}

    RETURN_TYPES = ("CONTROL_NET",)
    FUNCTION = "load_controlnet"
    CATEGORY = "loaders"

    def load_controlnet(self, control_net_name):
        from opencomfy.diffusion import cache
        from opencomfy.diffusion.controlnet import load_controlnet_file

        path = folder_paths.get_full_path_or_raise("controlnet", control_net_name)
        return (cache.get_or_load(cache.file_key(path, "controlnet"), lambda: load_controlnet_file(path)),)


class ControlNetApplyAdvanced:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "positive": ("CONDITIONING",),
            "negative": ("CONDITIONING",),
            "control_net": ("CONTROL_NET",),
            "image": ("IMAGE",),
            "strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 10.0, "step": 0.01}),
            "start_percent": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.001}),
            "end_percent": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.001}),
        }, "optional": {"vae": ("VAE",)}}

    RETURN_TYPES = ("CONDITIONING", "CONDITIONING")
    RETURN_NAMES = ("positive", "negative")
    FUNCTION = "apply_controlnet"
    CATEGORY = "conditioning/controlnet"

    def apply_controlnet(self, positive, negative, control_net, image, strength, start_percent,
                         end_percent, vae=None, extra_concat=()):
        from opencomfy.diffusion.controlnet import ControlApply

        if strength == 0:
            return (positive, negative)
        apply = ControlApply(control_net, image, strength, start_percent, end_percent)
        return (_attach(positive, apply), _attach(negative, apply))


class ControlNetApply:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "conditioning": ("CONDITIONING",),
            "control_net": ("CONTROL_NET",),
            "image": ("IMAGE",),
            "strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 10.0, "step": 0.01}),
        }}

    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "apply_controlnet"
    DEPRECATED = True
    CATEGORY = "conditioning/controlnet"

    def apply_controlnet(self, conditioning, control_net, image, strength):
        from opencomfy.diffusion.controlnet import ControlApply

        if strength == 0:
            return (conditioning,)
        return (_attach(conditioning, ControlApply(control_net, image, strength)),)


NODES = [
    ("ControlNetLoader", ControlNetLoader, "Load ControlNet Model", "nodes"),
    ("ControlNetApplyAdvanced", ControlNetApplyAdvanced, "Apply ControlNet", "nodes"),
    ("ControlNetApply", ControlNetApply, "Apply ControlNet (OLD)", "nodes"),
]
