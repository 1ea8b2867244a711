"""ControlNet and conditioning extras of the optional ``diffusion`` extra.

* DiffControlNetLoader (``nodes``): a ControlNet stored as differences to a UNet; the given
  MODEL's UNet weights are added back before loading.
* SetUnionControlNetType (``comfy_extras.nodes_controlnet``): records the control type on the
  CONTROL_NET value. Union ControlNet files themselves cannot be loaded yet: the loaders raise a
  clear error for them, so the type is only ever read by future union support.
* ControlNetInpaintingAliMamaApply: Apply ControlNet for inpainting ControlNets. For one whose hint
  encoder takes a mask channel, the masked-out pixels of the hint are blacked out and the keep
  mask rides along as a fourth channel; any other ControlNet is applied as by Apply ControlNet.
* CLIPTextEncodeControlnet / T5TokenizerOptions (``comfy_extras.nodes_cond``): a separate text
  for the ControlNet's cross attention; T5 tokenizer padding options kept on the CLIP value.

Empty ``NODES`` without the extra, like :mod:`opencomfy.nodes.diffusion`.
"""

from __future__ import annotations

import dataclasses

from opencomfy.compat import folder_paths
from opencomfy.diffusion import available
from opencomfy.nodes.v3_schema import V3SchemaNode

NODES_CONTROLNET = "comfy_extras.nodes_controlnet"
NODES_COND = "comfy_extras.nodes_cond"
UNION_TYPES = ["auto", "openpose", "depth", "hed/pidi/scribble/ted", "canny/lineart/anime_lineart/mlsd",
               "normal", "segment", "tile", "repaint"]
# The tokenizer names ComfyUI's T5-based text encoders read their padding options under.
T5_TOKENIZERS = ("t5xxl", "pile_t5xl", "t5base", "mt5xl", "umt5xxl")


class DiffControlNetLoader:
    """Load a diff ControlNet: its copies of the UNet's weights are deltas to ``model``'s UNet."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",),
                             "control_net_name": (folder_paths.get_filename_list("controlnet"),)}}

    RETURN_TYPES = ("CONTROL_NET",)
    FUNCTION = "load_controlnet"
    CATEGORY = "loaders"

    def load_controlnet(self, model, control_net_name):
        from opencomfy.diffusion.checkpoint_save import unet_state_dict
        from opencomfy.diffusion.controlnet import load_controlnet_file
        from opencomfy.diffusion.ldm_keys import UNET_PREFIX

        path = folder_paths.get_full_path_or_raise("controlnet", control_net_name)
        # The MODEL as it stands (its weight patches applied), in the file's LDM layout.
        base = {k[len(UNET_PREFIX):]: v for k, v in unet_state_dict(model).items() if k.startswith(UNET_PREFIX)}
        return (load_controlnet_file(path, diff_base=base),)


class SetUnionControlNetType:
    """Choose which control a union ControlNet performs (``auto``: let it infer)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"control_net": ("CONTROL_NET",), "type": (list(UNION_TYPES),)}}

    RETURN_TYPES = ("CONTROL_NET",)
    FUNCTION = "set_controlnet_type"
    CATEGORY = "conditioning/controlnet"

    def set_controlnet_type(self, control_net, type):  # noqa: A002 (ComfyUI's input name)
        if type not in UNION_TYPES:
            raise ValueError(f"SetUnionControlNetType: unknown type {type!r}; one of {', '.join(UNION_TYPES)}")
        index = None if type == "auto" else UNION_TYPES.index(type) - 1
        # A new value: the loaded ControlNet is cached and shared with other nodes.
        return (dataclasses.replace(control_net, union_type=index),)


class ControlNetInpaintingAliMamaApply:
    """Apply an inpainting ControlNet: the hint is the image with the masked area cleared, and
    ControlNets whose hint encoder takes a mask channel also get the keep mask."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "positive": ("CONDITIONING",),
            "negative": ("CONDITIONING",),
            "control_net": ("CONTROL_NET",),
            "vae": ("VAE",),
            "image": ("IMAGE",),
            "mask": ("MASK",),
            "strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 10.0, "step": 0.01}),
            "start_percent": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.001}),
            "end_percent": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.001}),
        }}

    RETURN_TYPES = ("CONDITIONING", "CONDITIONING")
    RETURN_NAMES = ("positive", "negative")
    FUNCTION = "apply_inpaint_controlnet"
    CATEGORY = "conditioning/controlnet"

    def apply_inpaint_controlnet(self, positive, negative, control_net, vae, image, mask, strength,
                                 start_percent, end_percent):
        from opencomfy.diffusion.controlnet import ControlApply
        from opencomfy.nodes.diffusion_controlnet import _attach
        from opencomfy.nodes.image_scaling import common_upscale

        if strength == 0:
            return (positive, negative)
        keep = None
        if control_net.concat_mask:
            keep = 1.0 - mask.reshape((-1, 1, mask.shape[-2], mask.shape[-1])).float()
            # Hard-edged at the image's size: masked pixels become black in the hint.
            keep_px = common_upscale(keep, image.shape[2], image.shape[1], "bilinear", "center").round()
            image = image * keep_px.movedim(1, -1)
        apply = ControlApply(control_net, image, strength, start_percent, end_percent, mask=keep)
        return (_attach(positive, apply), _attach(negative, apply))


class CLIPTextEncodeControlnet(V3SchemaNode):
    """Encode a text for the ControlNets' cross attention and add it to each conditioning
    entry (``cross_attn_controlnet``, ``pooled_output_controlnet``)."""

    NODE_ID = "CLIPTextEncodeControlnet"
    CATEGORY = "_for_testing/conditioning"
    RELATIVE_PYTHON_MODULE = NODES_COND
    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "encode"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"clip": ("CLIP", {}), "conditioning": ("CONDITIONING", {}),
                             "text": ("STRING", {"multiline": True, "dynamicPrompts": True})}}

    @classmethod
    def GET_NODE_INFO_V1(cls):
        return {**super().GET_NODE_INFO_V1(), "experimental": True}

    def encode(self, clip, conditioning, text):
        if clip is None:
            raise ValueError("CLIPTextEncodeControlnet: the clip input is empty (a checkpoint without a "
                             "text encoder?)")
        out = clip.encode_from_tokens(clip.tokenize(text), return_dict=True)
        cond, pooled = out["cond"], out.get("pooled_output")
        result = []
        for tensor, options in conditioning:
            new_options = dict(options)
            new_options["cross_attn_controlnet"] = cond
            new_options["pooled_output_controlnet"] = pooled
            result.append([tensor, new_options])
        return (result,)


class T5TokenizerOptions(V3SchemaNode):
    """Padding options for the T5 tokenizers of a CLIP value; encoders without T5 (the SD
    CLIPs) do not read them, so for those the CLIP encodes as before."""

    NODE_ID = "T5TokenizerOptions"
    CATEGORY = "_for_testing/conditioning"
    RELATIVE_PYTHON_MODULE = NODES_COND
    RETURN_TYPES = ("CLIP",)
    FUNCTION = "set_options"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "clip": ("CLIP", {}),
            "min_padding": ("INT", {"default": 0, "min": 0, "max": 10000, "step": 1}),
            "min_length": ("INT", {"default": 0, "min": 0, "max": 10000, "step": 1}),
        }}

    @classmethod
    def GET_NODE_INFO_V1(cls):
        return {**super().GET_NODE_INFO_V1(), "experimental": True}

    def set_options(self, clip, min_padding, min_length):
        if clip is None:
            raise ValueError("T5TokenizerOptions: the clip input is empty")
        clip = clip.clone()
        options = dict(getattr(clip, "tokenizer_options", None) or {})
        for name in T5_TOKENIZERS:
            options[f"{name}_min_padding"] = int(min_padding)
            options[f"{name}_min_length"] = int(min_length)
        clip.tokenizer_options = options
        return (clip,)


NODES: list = []

if available():
    NODES = [
        ("DiffControlNetLoader", DiffControlNetLoader, "Load ControlNet Model (diff)", "nodes"),
        ("SetUnionControlNetType", SetUnionControlNetType, "SetUnionControlNetType", NODES_CONTROLNET),
        ("ControlNetInpaintingAliMamaApply", ControlNetInpaintingAliMamaApply,
         "ControlNetInpaintingAliMamaApply", NODES_CONTROLNET),
        ("CLIPTextEncodeControlnet", CLIPTextEncodeControlnet, None, NODES_COND),
        ("T5TokenizerOptions", T5TokenizerOptions, None, NODES_COND),
    ]
