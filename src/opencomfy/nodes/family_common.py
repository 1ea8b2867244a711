"""Shared helpers of the model-family nodes (Flux, SD3, Wan, LTX-Video, Qwen-Image ...).

These nodes prepare conditioning and latents for a family's model; most of them only edit
CONDITIONING option dicts and make latents of the family's shape. Where a node needs a
capability of the family's own text encoder or VAE (a T5 tower, a video VAE that compresses
time), the helpers here check that the object given has it and otherwise raise a
:class:`FamilyCapabilityError` naming the node, the family and what is missing, rather than
computing something that only looks right.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch

from opencomfy.nodes.image_scaling import common_upscale

MAX_RESOLUTION = 16384


class FamilyCapabilityError(ValueError):
    """A node was given a model object that lacks what the family needs."""


def set_options(conditioning, values: dict, *, append: bool = False) -> list:
    """A copy of ``conditioning`` with ``values`` set on every entry's options.

    With ``append`` a list value is added after the one already there (chained reference
    latents, VACE frames); the input lists are never changed, as outputs are cached.
    """
    out = []
    for tensor, options in conditioning:
        new = dict(options)
        for key, value in values.items():
            if append and new.get(key) is not None:
                value = new[key] + value
            new[key] = value
        out.append([tensor, new])
    return out


def first_option(conditioning, key: str, default=None):
    """The value of ``key`` in the first entry that has it."""
    for _tensor, options in conditioning:
        if key in options:
            return options[key]
    return default


def resize_frames(images: torch.Tensor, width: int, height: int, method: str = "bilinear",
                  crop: str = "center") -> torch.Tensor:
    """IMAGE ``[N, H, W, C]`` resized to ``height`` x ``width`` (ComfyUI's common_upscale)."""
    return common_upscale(images.movedim(-1, 1), width, height, method, crop).movedim(1, -1)


# -- text encoders ------------------------------------------------------------------------------

def tokenize_towers(clip, text: str, needed: tuple, *, node: str, family: str) -> dict:
    """``clip.tokenize(text)``, checked to hold every tower in ``needed``."""
    if clip is None:
        raise FamilyCapabilityError(f"{node}: the clip input is empty (None); connect a text "
                                    f"encoder for {family}")
    tokens = clip.tokenize(text)
    missing = [key for key in needed if key not in tokens]
    if missing:
        have = ", ".join(sorted(tokens)) or "none"
        raise FamilyCapabilityError(
            f"{node} needs a {family} text encoder with the towers {', '.join(needed)}; the CLIP "
            f"given has {have} (missing {', '.join(missing)}). opencomfy cannot load {family} "
            f"text encoders yet")
    return tokens


def tokenize_with(clip, text: str, *, node: str, family: str, capability: str, **kwargs) -> dict:
    """``clip.tokenize(text, **kwargs)`` for encoders that take more than text (images, a
    chat template); fails clearly when the CLIP's tokenizer takes no such arguments."""
    if clip is None:
        raise FamilyCapabilityError(f"{node}: the clip input is empty (None); connect the "
                                    f"{family} text encoder")
    try:
        params = inspect.signature(clip.tokenize).parameters
    except (TypeError, ValueError):
        params = {}
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    missing = [name for name in kwargs if name not in params]
    if missing and not takes_any:
        raise FamilyCapabilityError(
            f"{node} needs the {family} text encoder, which {capability}; the CLIP given "
            f"({clip!r}) cannot take {', '.join(missing)}. opencomfy cannot load {family} text "
            f"encoders yet")
    return clip.tokenize(text, **kwargs)


def encode_tokens(clip, tokens: dict, add: dict | None = None) -> list:
    """Encode tokens into a CONDITIONING, with ``add`` set on its options.

    A ComfyUI-style CLIP (from a custom node pack) may schedule hooks itself
    (``encode_from_tokens_scheduled``); ours encodes in one go.
    """
    add = add or {}
    scheduled: Any = getattr(clip, "encode_from_tokens_scheduled", None)
    if scheduled is not None:
        conditioning: list = scheduled(tokens, add_dict=add)
        return conditioning
    out = clip.encode_from_tokens(tokens, return_dict=True)
    cond = out.pop("cond")
    return [[cond, {**out, **add}]]


def pad_to_same_length(clip, tokens: dict, a: str, b: str) -> None:
    """Append empty-prompt chunks to the shorter of two towers' token lists (in place): the
    towers' features are joined per token, so both need as many chunks."""
    if len(tokens[a]) == len(tokens[b]):
        return
    empty = clip.tokenize("")
    while len(tokens[a]) < len(tokens[b]):
        tokens[a] = tokens[a] + empty[a]
    while len(tokens[b]) < len(tokens[a]):
        tokens[b] = tokens[b] + empty[b]


# -- VAEs -----------------------------------------------------------------------------------------

def vae_temporal_compression(vae) -> int | None:
    """How many frames a VAE folds into one latent frame, as the VAE declares it (ComfyUI's
    ``temporal_compression_decode()``); None for an image VAE."""
    declared: Any = getattr(vae, "temporal_compression_decode", None)
    value: Any = declared() if callable(declared) else getattr(vae, "temporal_compression", None)
    return None if value is None else int(value)


def encode_video(vae, frames: torch.Tensor, *, node: str, family: str, temporal: int,
                 channels: int) -> torch.Tensor:
    """Frames ``[N, H, W, 3]`` -> the family's video latent ``[1, C, T, h, w]``.

    Only a video VAE that declares ``temporal`` frames per latent frame encodes a clip into
    the family's latent; an image VAE would give a batch of unrelated image latents.
    """
    if vae is None:
        raise FamilyCapabilityError(f"{node}: the vae input is empty (None); connect the {family} VAE")
    declared = vae_temporal_compression(vae)
    if declared != temporal:
        what = ("encodes single images" if declared is None
                else f"compresses {declared} frames into one latent frame")
        raise FamilyCapabilityError(
            f"{node} needs the {family} video VAE (it compresses {temporal} frames into one latent "
            f"frame, {channels} channels); the VAE given ({vae!r}) {what}. opencomfy cannot load "
            f"{family} VAEs yet")
    latent = vae.encode(frames[..., :3])
    if latent.ndim != 5 or latent.shape[1] != channels:
        raise FamilyCapabilityError(
            f"{node}: the VAE gave a latent of shape {tuple(latent.shape)}, not the {family} video "
            f"latent [batch, {channels}, frames, height, width]")
    return latent


def zeros_video_latent(batch: int, channels: int, length: int, height: int, width: int, *,
                       temporal: int, spatial: int) -> torch.Tensor:
    """A family's empty video latent: ``(length - 1) // temporal + 1`` latent frames."""
    return torch.zeros([batch, channels, (length - 1) // temporal + 1, height // spatial,
                        width // spatial])


def latent_format(name: str):
    """The published latent statistics of a family (``comfy.latent_formats``)."""
    from opencomfy.diffusion import latent_formats

    return getattr(latent_formats, name)()
