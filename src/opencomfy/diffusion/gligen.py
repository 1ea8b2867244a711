"""GLIGEN (Li et al. 2023, "Open-Set Grounded Text-to-Image Generation"): text in boxes.

A GLIGEN file (``models/gligen``, e.g. ``gligen_sd14_textbox_pruned.safetensors``) adds to a
frozen SD UNet:

- ``position_net.*``, the grounding tokenizer: each (box, phrase) pair becomes one token, the
  box corners' Fourier features next to the phrase's pooled CLIP embedding, through an MLP.
  There are 30 slots; empty ones get the learned null features.
- ``<LDM block>.transformer_blocks.<k>.fuser.*``, one gated self-attention layer per UNet
  transformer block. Right after the block's self-attention, the image tokens attend over
  themselves plus the grounding tokens and the result is added scaled by ``tanh(alpha)``
  (zero when untrained, so the base model is untouched), then a gated feed-forward.

Both are diffusers' own modules (``GLIGENTextBoundingboxProjection``,
``GatedSelfAttentionDense``), whose parameter names are the file's. They run at sampling time
as a ComfyUI ``middle_patch`` (:mod:`unet_patches`), built per UNet call from a conditioning
entry's ``"gligen": ("position", GLIGEN, [(pooled, h, w, y, x), ...])`` (latent pixels).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any

import torch

from opencomfy.weights import UnsupportedCheckpoint, read_model_file

MAX_OBJECTS = 30
SD1_PHRASE_DIM = 768
# "input_blocks.1.1.transformer_blocks.0.fuser.attn.to_q.weight" (any prefix before it)
_FUSER_KEY = re.compile(r"(?:^|\.)(?:(input|output)_blocks\.(\d+)|middle_block)\.\d+\."
                        r"transformer_blocks\.(\d+)\.fuser\.(.+)$")


def _slot(block: tuple[str, int], block_index: int) -> str:
    """ModuleDict key of the fuser of transformer block ``block_index`` in LDM ``block``."""
    return f"{block[0]}_{block[1]}_{block_index}"


def fuser_heads(query_dim: int, context_dim: int) -> tuple[int, int]:
    """(heads, head width) of a gated attention layer: the file does not say, the UNet it was
    trained with does. SD 1.x (768-wide context) has 8 heads; others 64-wide heads (one head
    when the layer is narrower, as in small test models)."""
    if context_dim == SD1_PHRASE_DIM:
        return 8, query_dim // 8
    if query_dim < 64:
        return 1, query_dim
    return query_dim // 64, 64


class GligenModule(torch.nn.Module):
    """The grounding tokenizer and the gated attention layers, keyed by UNet block."""

    fusers: torch.nn.ModuleDict

    def __init__(self, position_net: torch.nn.Module, fusers: dict[str, torch.nn.Module], key_dim: int):
        super().__init__()
        self.position_net = position_net
        self.fusers = torch.nn.ModuleDict(fusers)
        self.key_dim = key_dim          # the phrase embedding's width
        self.max_objs = MAX_OBJECTS

    def _patch(self, boxes: torch.Tensor, masks: torch.Tensor, phrases: torch.Tensor) -> Callable:
        """The ``middle_patch`` for these grounding inputs (tokens computed once per call)."""
        p = next(self.position_net.parameters())
        objs = self.position_net(boxes.to(p.device, p.dtype), masks.to(p.device, p.dtype),
                                 positive_embeddings=phrases.to(p.device, p.dtype))

        def patch(x: torch.Tensor, extra: dict) -> torch.Tensor:
            block, index = tuple(extra["block"]), int(extra.get("block_index", 0))
            slot = _slot(block, index)
            if slot not in self.fusers:
                raise ValueError(f"this GLIGEN model has no gated attention for the UNet's {block[0]} block "
                                 f"{block[1]}: it was made for another model family")
            fuser: Any = self.fusers[slot]
            weight: torch.Tensor = fuser.linear.weight
            if weight.shape[0] != x.shape[-1]:
                raise ValueError(f"this GLIGEN model's {block[0]} block {block[1]} is {weight.shape[0]} "
                                 f"channels wide but the UNet's is {x.shape[-1]}: it was made for another "
                                 "model family")
            tokens = objs.to(weight.device, weight.dtype)
            if tokens.shape[0] != x.shape[0]:
                tokens = tokens[:1].expand(x.shape[0], -1, -1)
            return fuser(x.to(weight.dtype), tokens).to(x.dtype)

        return patch

    def set_position(self, latent_shape, position_params: list, device) -> Callable:
        """The patch for boxes ``(pooled [1, dim], h, w, y, x)`` (latent pixels) on a latent of
        ``latent_shape`` ``(B, C, H, W)``; boxes become corner fractions of the latent."""
        batch, _c, height, width = latent_shape[:4]
        if len(position_params) > self.max_objs:
            raise ValueError(f"GLIGEN takes at most {self.max_objs} boxes per conditioning, "
                             f"this one has {len(position_params)}")
        boxes = torch.zeros(self.max_objs, 4)
        masks = torch.zeros(self.max_objs)
        phrases = torch.zeros(self.max_objs, self.key_dim)
        for i, (pooled, h, w, y, x) in enumerate(position_params):
            pooled = torch.as_tensor(pooled).reshape(-1)
            if pooled.shape[0] != self.key_dim:
                raise ValueError(f"this GLIGEN model takes {self.key_dim}-wide phrase embeddings, a box "
                                 f"has {pooled.shape[0]}: encode its text with the matching CLIP")
            boxes[i] = torch.tensor([x / width, y / height, (x + w) / width, (y + h) / height])
            masks[i] = 1.0
            phrases[i] = pooled.float()
        return self._patch(boxes.expand(batch, -1, -1).to(device), masks.expand(batch, -1).to(device),
                           phrases.expand(batch, -1, -1).to(device))

    def set_empty(self, latent_shape, device) -> Callable:
        """The patch with every slot empty (GLIGEN's null grounding)."""
        batch = latent_shape[0]
        return self._patch(torch.zeros(batch, self.max_objs, 4, device=device),
                           torch.zeros(batch, self.max_objs, device=device),
                           torch.zeros(batch, self.max_objs, self.key_dim, device=device))


class Gligen:
    """GLIGEN: the loaded model (``.model``, as ComfyUI's patcher exposes it) for the sampler."""

    def __init__(self, model: GligenModule, name: str = "GLIGEN"):
        self.model = model
        self.name = name
        self.patches: list = []

    def modules(self):
        return [self.model]

    def __repr__(self) -> str:
        return f"<GLIGEN {self.name} blocks={len(self.model.fusers)}>"


def middle_patch(entry, latent_shape, device) -> Callable:
    """The ``middle_patch`` of a conditioning entry's ``gligen`` value on this latent."""
    if not isinstance(entry, (tuple, list)) or len(entry) < 2 or not hasattr(entry[1], "model"):
        raise ValueError("this conditioning's 'gligen' entry is not (kind, GLIGEN, boxes) as "
                         "GLIGENTextBoxApply makes it")
    kind, gligen = entry[0], entry[1].model
    if kind == "position":
        return gligen.set_position(latent_shape, list(entry[2]), device)
    return gligen.set_empty(latent_shape, device)


def build_gligen(state_dict: dict, name: str = "GLIGEN model") -> Gligen:
    """A :class:`Gligen` from a state dict in the layout of ComfyUI's GLIGEN files."""
    from accelerate import init_empty_weights
    from diffusers.models.attention import GatedSelfAttentionDense
    from diffusers.models.embeddings import GLIGENTextBoundingboxProjection

    from opencomfy.diffusion.loading import _assign

    fuser_weights: dict[str, dict[str, torch.Tensor]] = {}
    own: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if m := _FUSER_KEY.search(key):
            slot = _slot((m[1], int(m[2])) if m[1] else ("middle", 0), int(m[3]))
            fuser_weights.setdefault(slot, {})[m[4]] = value
            own[f"fusers.{slot}.{m[4]}"] = value
        elif "position_net." in key:
            own["position_net." + key.split("position_net.", 1)[1]] = value
    if not fuser_weights or "position_net.null_positive_feature" not in own \
            or "position_net.linears.4.weight" not in own:
        raise UnsupportedCheckpoint(f"{name} is not a GLIGEN text-box model (it needs position_net.* and "
                                    "per-block fuser.* weights)")
    key_dim = int(own["position_net.null_positive_feature"].shape[0])
    with init_empty_weights():
        position_net = GLIGENTextBoundingboxProjection(
            positive_len=key_dim,
            out_dim=own["position_net.linears.4.weight"].shape[0], feature_type="text-only")
        fusers = {}
        for slot, weights in fuser_weights.items():
            if "linear.weight" not in weights:
                raise UnsupportedCheckpoint(f"{name}: the gated attention of {slot} has no linear.weight")
            query_dim, context_dim = weights["linear.weight"].shape
            heads, head_dim = fuser_heads(query_dim, context_dim)
            fusers[slot] = GatedSelfAttentionDense(query_dim, context_dim, heads, head_dim)
        module = GligenModule(position_net, fusers, key_dim)
    return Gligen(_assign(module, own, "unet"), name)


def load_gligen_file(path: str) -> Gligen:
    """GLIGEN from a ``models/gligen`` file."""
    name = os.path.basename(path)
    state_dict = read_model_file(path)
    return build_gligen(state_dict, name)
