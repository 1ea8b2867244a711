"""Transformer blocks by index, and their replacement (ComfyUI's ``patches_replace["dit"]``).

ComfyUI's DiT models (SD3, Flux, ...) look up ``transformer_options["patches_replace"]["dit"]
[("double_block", i)]`` (or ``"single_block"``) before running block ``i``; a replacement is
``fn(args, extra) -> args`` where ``args`` holds the block's inputs (``"img"``: the image tokens,
``"txt"``: the text tokens) and ``extra["original_block"](args)`` runs the block itself. Skip
Layer Guidance uses it to drop blocks (``fn = lambda args, extra: args``).

:func:`indexed_blocks` says which blocks a model exposes under those names:

- a diffusers DiT (``transformer_blocks`` and ``single_transformer_blocks`` lists on the model):
  those lists, as ``double_block`` and ``single_block``;
- an SD UNet: every ``BasicTransformerBlock`` in running order (the input blocks', the middle
  block's, then the output blocks'; SD 1.5 has 16, numbered 0-15) as ``double_block`` (each
  sees both the image tokens and the text, as a DiT's double block does). A UNet has no
  single-stream blocks.

:func:`install_block_replacements` routes each of those blocks through a dispatcher (once per
model) that runs the replacement of the current UNet call, if any, else the block as it is.
"""

from __future__ import annotations

import torch

DOUBLE = "double_block"
SINGLE = "single_block"


def _unet_transformers(unet) -> list:
    """The UNet's ``Transformer2DModel`` s in running order."""
    out = []
    for block in unet.down_blocks:
        out.extend(getattr(block, "attentions", None) or [])
    if unet.mid_block is not None:
        out.extend(getattr(unet.mid_block, "attentions", None) or [])
    for block in unet.up_blocks:
        out.extend(getattr(block, "attentions", None) or [])
    return out


def indexed_blocks(model) -> dict[str, list[torch.nn.Module]]:
    """``{"double_block": [...], "single_block": [...]}``: the model's blocks by index."""
    if hasattr(model, "down_blocks") and hasattr(model, "up_blocks"):
        blocks = [tb for t in _unet_transformers(model) for tb in getattr(t, "transformer_blocks", [])]
        return {DOUBLE: blocks, SINGLE: []}
    return {DOUBLE: list(getattr(model, "transformer_blocks", None) or []),
            SINGLE: list(getattr(model, "single_transformer_blocks", None) or [])}


def block_counts(model) -> dict[str, int]:
    return {kind: len(blocks) for kind, blocks in indexed_blocks(model).items()}


def _dispatcher(original, kind: str, index: int):
    from opencomfy.diffusion.unet_patches import current_transformer_options

    def forward(hidden_states, *args, **kwargs):
        options = current_transformer_options()
        replace = (options or {}).get("patches_replace", {}).get("dit", {}).get((kind, index))
        if replace is None:
            return original(hidden_states, *args, **kwargs)

        def original_block(block_args: dict) -> dict:
            call_kwargs = dict(kwargs)
            if block_args.get("txt") is not None and "encoder_hidden_states" in kwargs:
                call_kwargs["encoder_hidden_states"] = block_args["txt"]
            return {**block_args, "img": original(block_args["img"], *args, **call_kwargs)}

        block_args = {"img": hidden_states, "txt": kwargs.get("encoder_hidden_states")}
        extra = {"original_block": original_block, "transformer_options": options,
                 "block_type": kind, "block_index": index}
        return replace(block_args, extra)["img"]

    forward.opencomfy_block_dispatch = True   # type: ignore[attr-defined]
    return forward


def install_block_replacements(model) -> None:
    """Route every indexed block of ``model`` through the replacement dispatcher (once per
    block, even when the model is reached through a compiled wrapper)."""
    for kind, blocks in indexed_blocks(model).items():
        for index, block in enumerate(blocks):
            if getattr(block.__dict__.get("forward"), "opencomfy_block_dispatch", False):
                continue
            # An instance attribute shadows the class's forward; nn.Module.__call__ finds it.
            block.forward = _dispatcher(block.forward, kind, index)
