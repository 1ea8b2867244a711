"""CLIP vision encoders (CLIP_VISION) and what they produce (CLIP_VISION_OUTPUT).

The file ComfyUI users download for ``models/clip_vision`` holds a transformers-layout image
tower: ``vision_model.*`` and, for CLIP, ``visual_projection.weight`` (open_clip's
``visual.*`` layout is converted). Which tower it is (ViT-L/14, ViT-L/14-336, ViT-H/14,
ViT-bigG/14, SigLIP 384/512) is read off the shapes; the configs ship in
``configs/clip_vision.json`` and other sizes are derived from the shapes. The towers run as
transformers' ``CLIPVisionModelWithProjection`` / ``SiglipVisionModel``, with the weights
stored as ComfyUI stores text encoders (fp16, computed in float32).
"""

from __future__ import annotations

import logging
import os
import re

import torch
import torch.nn.functional as F

from opencomfy.diffusion.memory import models_in_use
from opencomfy.weights import UnsupportedCheckpoint, read_model_file

log = logging.getLogger(__name__)

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
_P = "vision_model."
_LAYER = re.compile(r"vision_model\.encoder\.layers\.(\d+)\.")


class ClipVisionOutput:
    """CLIP_VISION_OUTPUT: read as attributes or items (``out["image_embeds"]``), as ComfyUI's."""

    image_embeds: torch.Tensor
    last_hidden_state: torch.Tensor
    penultimate_hidden_states: torch.Tensor
    mm_projected: torch.Tensor | None = None
    image_sizes: list

    def __getitem__(self, key: str):
        return getattr(self, key)

    def __setitem__(self, key: str, value) -> None:
        setattr(self, key, value)

    def __contains__(self, key: str) -> bool:
        return hasattr(self, key)


def clip_preprocess(image: torch.Tensor, size: int = 224, mean=CLIP_MEAN, std=CLIP_STD,
                    crop: bool = True) -> torch.Tensor:
    """IMAGE ``[B, H, W, C]`` -> normalised pixels ``[B, 3, size, size]``.

    With ``crop`` the short side is scaled to ``size`` and the centre cut out; without, the
    image is squashed to a square. Pixels are rounded to 8 bits first, as ComfyUI does.
    """
    image = image[..., :3].movedim(-1, 1)
    if image.shape[2] != size or image.shape[3] != size:
        if crop:
            scale = size / min(image.shape[2], image.shape[3])
            target = (round(scale * image.shape[2]), round(scale * image.shape[3]))
        else:
            target = (size, size)
        image = F.interpolate(image, size=target, mode="bicubic", antialias=True)
        top, left = (image.shape[2] - size) // 2, (image.shape[3] - size) // 2
        image = image[:, :, top:top + size, left:left + size]
    image = torch.clip(255.0 * image, 0, 255).round() / 255.0
    mean_t = torch.tensor(mean, device=image.device, dtype=image.dtype).view(3, 1, 1)
    std_t = torch.tensor(std, device=image.device, dtype=image.dtype).view(3, 1, 1)
    return (image - mean_t) / std_t


def open_clip_visual_to_transformers(state_dict: dict, prefix: str) -> dict:
    """open_clip's ``visual.*`` image tower (under ``prefix``) -> transformers' key names."""
    renames = {"class_embedding": "embeddings.class_embedding", "conv1.weight": "embeddings.patch_embedding.weight",
               "positional_embedding": "embeddings.position_embedding.weight",
               "ln_pre.weight": "pre_layrnorm.weight", "ln_pre.bias": "pre_layrnorm.bias",
               "ln_post.weight": "post_layernorm.weight", "ln_post.bias": "post_layernorm.bias"}
    parts = {"ln_1": "layer_norm1", "ln_2": "layer_norm2", "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2",
             "attn.out_proj": "self_attn.out_proj"}
    out = {}
    for key, value in state_dict.items():
        if not key.startswith(prefix):
            continue
        name = key[len(prefix):]
        if name == "proj":
            out["visual_projection.weight"] = value.t().contiguous()
        elif name in renames:
            out[_P + renames[name]] = value
        elif m := re.match(r"transformer\.resblocks\.(\d+)\.(.+)[._](weight|bias)$", name):
            layer, part, kind = m[1], m[2], m[3]     # "attn.in_proj_weight" has no dot before "weight"
            base = f"{_P}encoder.layers.{layer}."
            if part == "attn.in_proj":
                for proj, chunk in zip(("q_proj", "k_proj", "v_proj"), value.chunk(3, dim=0), strict=True):
                    out[f"{base}self_attn.{proj}.{kind}"] = chunk.contiguous()
            elif part in parts:
                out[f"{base}{parts[part]}.{kind}"] = value
    return out


def vision_config(shapes: dict[str, tuple]) -> dict:
    """The transformers config of the image tower whose weights have these shapes."""
    from opencomfy.diffusion.detect import bundled_config

    patch = shapes.get(_P + "embeddings.patch_embedding.weight")
    positions = shapes.get(_P + "embeddings.position_embedding.weight")
    fc1 = shapes.get(_P + "encoder.layers.0.mlp.fc1.weight")
    if patch is None or positions is None or fc1 is None or len(patch) != 4:
        raise UnsupportedCheckpoint("not a CLIP vision model in the transformers layout (vision_model.*)")
    siglip = _P + "embeddings.class_embedding" not in shapes
    layers = 1 + max(int(m[1]) for k in shapes if (m := _LAYER.match(k)))
    grid = round((positions[0] - (0 if siglip else 1)) ** 0.5)
    derived = {"hidden_size": patch[0], "intermediate_size": fc1[0], "num_hidden_layers": layers,
               "patch_size": patch[2], "image_size": grid * patch[2]}
    for config in bundled_config("clip_vision").values():
        if all(config[k] == v for k, v in derived.items()) and siglip == (config["model_type"] != "clip_vision_model"):
            return dict(config)
    # A size we ship no config for (a small test model, a fine-tune): what the weights do not
    # show is taken from the family (64-wide heads; OpenAI CLIP's quick GELU, SigLIP's GELU).
    config = {**derived, "num_attention_heads": max(1, derived["hidden_size"] // 64)}
    if siglip:
        config.update(model_type="siglip_vision_model", hidden_act="gelu_pytorch_tanh", layer_norm_eps=1e-6,
                      image_mean=[0.5] * 3, image_std=[0.5] * 3)
    else:
        config.update(model_type="clip_vision_model", hidden_act="quick_gelu", layer_norm_eps=1e-5)
    if "visual_projection.weight" in shapes:
        config["projection_dim"] = shapes["visual_projection.weight"][0]
    return config


class ClipVision:
    """CLIP_VISION: an image tower and its preprocessing. ``encode_image`` as ComfyUI's."""

    def __init__(self, model, config: dict):
        self.model = model
        self.config = config
        self.model_type = config["model_type"]
        self.image_size = int(config["image_size"])
        self.image_mean = list(config.get("image_mean", CLIP_MEAN))
        self.image_std = list(config.get("image_std", CLIP_STD))
        self.patches: list = []

    def modules(self):
        return [self.model]

    def get_sd(self) -> dict:
        return self.model.state_dict()

    def encode_image(self, image: torch.Tensor, crop: bool = True) -> ClipVisionOutput:
        pixels = clip_preprocess(image.float(), size=self.image_size, mean=self.image_mean,
                                 std=self.image_std, crop=crop)
        with models_in_use(self) as device, torch.no_grad():
            dtype = next(self.model.parameters()).dtype
            result = self.model(pixel_values=pixels.to(device, dtype), output_hidden_states=True)
        out = ClipVisionOutput()
        out["last_hidden_state"] = result.last_hidden_state.float().cpu()
        out["penultimate_hidden_states"] = result.hidden_states[-2].float().cpu()
        out["image_sizes"] = [tuple(pixels.shape[1:])] * pixels.shape[0]
        out["mm_projected"] = None
        if self.model_type == "siglip_vision_model":
            # SigLIP has no projection: ComfyUI's embeds are the normed tokens, not a pooled vector.
            out["image_embeds"] = out["last_hidden_state"]
            out["all_hidden_states"] = torch.stack(result.hidden_states[1:], dim=1).float().cpu()
        else:
            out["image_embeds"] = result.image_embeds.float().cpu()
        return out

    def __repr__(self) -> str:
        return f"<CLIP_VISION {self.model_type} {self.image_size}px>"


def build_clip_vision(state_dict: dict, name: str = "CLIP vision model") -> ClipVision:
    """A :class:`ClipVision` from a transformers-layout (or open_clip ``visual.``) state dict."""
    from accelerate import init_empty_weights

    from opencomfy.diffusion.loading import _assign

    if "visual.transformer.resblocks.0.attn.in_proj_weight" in state_dict:
        state_dict = open_clip_visual_to_transformers(state_dict, "visual.")
    config = vision_config({k: tuple(v.shape) for k, v in state_dict.items()})
    settings = {k: v for k, v in config.items() if k not in ("model_type", "image_mean", "image_std")}
    if config["model_type"] == "siglip_vision_model":
        from transformers import SiglipVisionConfig, SiglipVisionModel

        with init_empty_weights():
            model = SiglipVisionModel(SiglipVisionConfig(**settings, vision_use_head=False))
    else:
        from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

        if "projection_dim" not in config or "visual_projection.weight" not in state_dict:
            raise UnsupportedCheckpoint("a CLIP vision model needs visual_projection.weight")
        with init_empty_weights():
            model = CLIPVisionModelWithProjection(CLIPVisionConfig(**settings))
    wanted = set(model.state_dict())
    if not any(k.startswith(_P) for k in wanted):
        # transformers' SiglipVisionModel names its weights without the tower prefix the files use
        state_dict = {k[len(_P):] if k.startswith(_P) else k: v for k, v in state_dict.items()}
    extra = sorted(k for k in state_dict if k not in wanted)
    if extra:
        # ComfyUI loads these files loosely too: heads and projectors it has no use for are dropped.
        log.info("%s: ignoring %d unused weights (%s ...)", name, len(extra), extra[0])
    own = {k: v for k, v in state_dict.items() if k in wanted}
    return ClipVision(_assign(model, own, "text_encoder"), config)


def load_clip_vision_file(path: str) -> ClipVision:
    """CLIP_VISION from a ``models/clip_vision`` file."""
    name = os.path.basename(path)
    state_dict = read_model_file(path)
    try:
        return build_clip_vision(state_dict, name)
    except UnsupportedCheckpoint as exc:
        raise UnsupportedCheckpoint(f"{name}: {exc}") from exc
