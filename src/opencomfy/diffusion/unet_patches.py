"""ComfyUI's UNet patches (``transformer_options``) on a diffusers ``UNet2DConditionModel``.

ComfyUI names the parts of an SD UNet by the original LDM layout, and patches address them so:

- ``("input", n)``: input block ``n``. Block 0 is ``conv_in``; then, level by level, one block
  per ``down_blocks[i].resnets[j]`` (with ``attentions[j]``) and one for the level's
  ``downsamplers`` (all levels but the last). SD 1.5: 1-2, 4-5, 7-8 hold attention; 3, 6, 9 are
  the downsamplers; 10-11 the last level.
- ``("middle", 0)``: ``mid_block``.
- ``("output", n)``: one block per ``up_blocks[i].resnets[j]`` (with ``attentions[j]``), the
  level's ``upsamplers`` belonging to its last block. SD 1.5: 3-11 hold attention.
- An attention replacement key may add the index of the transformer block inside the block's
  ``Transformer2DModel`` (``transformer_blocks[k]``): ``("input", 4, 0)``. ``transformer_index``
  in the patch's extra options counts the ``Transformer2DModel`` s in running order.

Attention patches run through an attention processor installed on every ``Attention`` module
(it defers to the original processor when no patch concerns it). ``middle_patch`` functions (GLIGEN)
run in each transformer block right after self-attention's residual, through diffusers' own
GLIGEN slot (:func:`_install_middle_patches`). Block patches
(``input_block_patch``, ``input_block_patch_after_skip``, ``output_block_patch``) need the skip
connections between blocks, so a UNet with block patches runs through :func:`_forward_by_blocks`,
which walks diffusers' modules in the LDM block order; without them diffusers' own forward runs.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass

import torch
import torch.nn.functional as F

_BLOCK_PATCHES = ("input_block_patch", "input_block_patch_after_skip", "output_block_patch")
_ATTENTION_PATCHES = ("attn1_patch", "attn2_patch", "attn1_output_patch", "attn2_output_patch")

# The transformer_options of the UNet call running in this thread (None outside one).
_current: contextvars.ContextVar[dict | None] = contextvars.ContextVar("unet_transformer_options",
                                                                      default=None)


@dataclass(frozen=True)
class AttentionSite:
    """Where one ``Attention`` module sits, in ComfyUI's terms."""

    kind: str                     # "attn1" (self-attention) or "attn2" (cross-attention)
    block: tuple[str, int]        # ("input", 4)
    block_index: int              # index in the Transformer2DModel's transformer_blocks
    transformer_index: int        # running count of Transformer2DModels


def _input_numbers(unet) -> list[tuple[list[int], int | None]]:
    """For each down block: the input-block numbers of its layers and of its downsampler."""
    out, number = [], 1
    for block in unet.down_blocks:
        layers = list(range(number, number + len(block.resnets)))
        number += len(block.resnets)
        down = None
        if getattr(block, "downsamplers", None):
            down = number
            number += 1
        out.append((layers, down))
    return out


def attention_sites(unet) -> dict[int, AttentionSite]:
    """``id(Attention module) -> AttentionSite`` for the whole UNet (computed once per UNet)."""
    cached = getattr(unet, "_opencomfy_attention_sites", None)
    if cached is not None:
        return cached
    sites: dict[int, AttentionSite] = {}
    counter = 0

    def add(transformer, block):
        nonlocal counter
        for k, tb in enumerate(getattr(transformer, "transformer_blocks", [])):
            for kind in ("attn1", "attn2"):
                module = getattr(tb, kind, None)
                if module is not None:
                    sites[id(module)] = AttentionSite(kind, block, k, counter)
        counter += 1

    for block, (layers, _down) in zip(unet.down_blocks, _input_numbers(unet), strict=True):
        for j, transformer in enumerate(getattr(block, "attentions", None) or []):
            add(transformer, ("input", layers[j]))
    for transformer in getattr(unet.mid_block, "attentions", None) or []:
        add(transformer, ("middle", 0))
    number = 0
    for block in unet.up_blocks:
        for j, transformer in enumerate(getattr(block, "attentions", None) or []):
            add(transformer, ("output", number + j))
        number += len(block.resnets)
    unet._opencomfy_attention_sites = sites
    return sites


def _install_processors(unet) -> None:
    """Put a :class:`PatchedAttnProcessor` on every attention module (once per UNet)."""
    if getattr(unet, "_opencomfy_processors_installed", False):
        return
    from diffusers.models.attention_processor import Attention

    sites = attention_sites(unet)
    for module in unet.modules():
        if isinstance(module, Attention) and id(module) in sites:
            module.set_processor(PatchedAttnProcessor(module.processor, sites[id(module)]))  # type: ignore[arg-type]
    unet._opencomfy_processors_installed = True


def heads_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int) -> torch.Tensor:
    """Multi-head attention over ``[B, N, heads * dim]`` projections (ComfyUI's
    ``optimized_attention``): returns ``[B, N, heads * dim]``."""
    b, n, inner = q.shape
    d = inner // heads
    q, k, v = (t.reshape(b, -1, heads, d).transpose(1, 2) for t in (q, k, v))
    out = F.scaled_dot_product_attention(q, k, v)
    return out.transpose(1, 2).reshape(b, n, heads * d)


class PatchedAttnProcessor:
    """Runs ComfyUI's attention patches for one attention module, else its original processor."""

    def __init__(self, original, site: AttentionSite):
        self.original = original
        self.site = site

    def _extra_options(self, attn, options: dict) -> dict:
        extra = {k: v for k, v in options.items() if k not in ("patches", "patches_replace")}
        extra.update(n_heads=attn.heads, dim_head=attn.inner_dim // attn.heads, attn_precision=None,
                     block=self.site.block, block_index=self.site.block_index,
                     transformer_index=self.site.transformer_index)
        return extra

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None,
                 temb=None, *args, **kwargs):
        options = _current.get()
        kind = self.site.kind
        patches = (options or {}).get("patches", {})
        replace_all = (options or {}).get("patches_replace", {}).get(kind, {})
        site = self.site
        replace = replace_all.get((site.block[0], site.block[1], site.block_index)) \
            or replace_all.get(site.block)
        before = patches.get(f"{kind}_patch", [])
        after = patches.get(f"{kind}_output_patch", [])
        if options is None or not (replace or before or after):
            return self.original(attn, hidden_states, encoder_hidden_states, attention_mask, temb,
                                 *args, **kwargs)
        extra = self._extra_options(attn, options)
        n = hidden_states
        context = encoder_hidden_states
        value = None
        if before:
            context = n if context is None else context
            value = context
            for p in before:
                n, context, value = p(n, context, value, extra)
        if context is None:
            context = n
        if value is None:
            value = context
        q, k, v = attn.to_q(n), attn.to_k(context), attn.to_v(value)
        if replace:
            n = replace(q, k, v, extra)
        else:
            n = heads_attention(q, k, v, attn.heads)
        n = attn.to_out[1](attn.to_out[0](n))
        for p in after:
            n = p(n, extra)
        return n


def _route_middle_patches(block, args, kwargs):
    """Forward pre-hook of a ``BasicTransformerBlock``: when the running call has middle patches,
    ask the block for its GLIGEN step (diffusers' slot right after self-attention's residual,
    where ComfyUI runs ``middle_patch``), which :func:`_middle_patch_runner` fills."""
    options = _current.get()
    if not (options or {}).get("patches", {}).get("middle_patch"):
        return None
    cross = dict(kwargs.get("cross_attention_kwargs") or {})
    cross["gligen"] = {"objs": None}
    return args, {**kwargs, "cross_attention_kwargs": cross}


def _middle_patch_runner(block, site: AttentionSite):
    def run(hidden_states: torch.Tensor, _objs) -> torch.Tensor:
        options = _current.get() or {}
        extra = PatchedAttnProcessor(None, site)._extra_options(block.attn1, options)
        for patch in options.get("patches", {}).get("middle_patch", []):
            hidden_states = patch(hidden_states, extra)
        return hidden_states
    return run


def _install_middle_patches(unet) -> None:
    """Give every transformer block a ``middle_patch`` step (once per UNet). A plain function in
    the block's ``fuser`` slot, not a submodule, so the UNet's weights are unchanged; blocks
    that carry diffusers' own GLIGEN fuser keep it."""
    if getattr(unet, "_opencomfy_middle_installed", False):
        return
    sites = attention_sites(unet)
    for module in unet.modules():
        attn1 = getattr(module, "attn1", None)
        if attn1 is None or id(attn1) not in sites or "fuser" in module._modules:
            continue
        module.__dict__["fuser"] = _middle_patch_runner(module, sites[id(attn1)])
        module.register_forward_pre_hook(_route_middle_patches, with_kwargs=True)
    unet._opencomfy_middle_installed = True


def current_transformer_options() -> dict | None:
    """The ``transformer_options`` of the UNet call running in this thread (None outside one),
    for code hooked deeper into the model (transformer-block replacements)."""
    return _current.get()


def _has(patches: dict, names) -> bool:
    return any(patches.get(name) for name in names)


def unet_forward(unet, sample: torch.Tensor, timestep: torch.Tensor, context: torch.Tensor, *,
                 transformer_options: dict, added_cond_kwargs: dict | None = None,
                 down_residuals=None, mid_residual=None) -> torch.Tensor:
    """The UNet's output for ``sample`` with the patches in ``transformer_options`` applied."""
    patches = transformer_options.get("patches", {})
    uses_attention = _has(patches, _ATTENTION_PATCHES) or any(transformer_options.get("patches_replace", {}).values())
    if uses_attention:
        _install_processors(unet)
    if patches.get("middle_patch"):
        _install_middle_patches(unet)
    if transformer_options.get("patches_replace", {}).get("dit"):
        from opencomfy.diffusion.transformer_blocks import install_block_replacements

        install_block_replacements(unet)
    # Attention patches that tile or merge tokens need the latent's size (ComfyUI passes it too).
    transformer_options["original_shape"] = list(sample.shape)
    token = _current.set(transformer_options)
    try:
        if _has(patches, _BLOCK_PATCHES):
            return _forward_by_blocks(unet, sample, timestep, context, transformer_options,
                                      added_cond_kwargs, down_residuals, mid_residual)
        extra = {}
        if added_cond_kwargs is not None:
            extra["added_cond_kwargs"] = added_cond_kwargs
        if down_residuals is not None:
            extra["down_block_additional_residuals"] = down_residuals
            extra["mid_block_additional_residual"] = mid_residual
        return unet(sample, timestep, encoder_hidden_states=context, return_dict=False, **extra)[0]
    finally:
        _current.reset(token)


def _time_embedding(unet, sample, timestep, context, added_cond_kwargs):
    emb = unet.time_embedding(unet.get_time_embed(sample=sample, timestep=timestep), None)
    if unet.get_class_embed(sample=sample, class_labels=None) is not None:
        raise ValueError("block patches are not supported on class-conditional UNets")
    aug = unet.get_aug_embed(emb=emb, encoder_hidden_states=context, added_cond_kwargs=added_cond_kwargs or {})
    emb = emb + aug if aug is not None else emb
    return unet.time_embed_act(emb) if unet.time_embed_act is not None else emb


def _forward_by_blocks(unet, sample, timestep, context, to, added_cond_kwargs, down_residuals,
                       mid_residual):
    """diffusers' UNet forward, block by block in ComfyUI's order, with the block patches."""
    patches = to.get("patches", {})
    emb = _time_embedding(unet, sample, timestep, context, added_cond_kwargs)
    context = unet.process_encoder_hidden_states(encoder_hidden_states=context,
                                                 added_cond_kwargs=added_cond_kwargs or {})
    to["original_shape"] = list(sample.shape)
    skips: list[torch.Tensor] = []

    def input_done(h, number):
        to["block"] = ("input", number)
        for p in patches.get("input_block_patch", []):
            h = p(h, to)
        skips.append(h)
        for p in patches.get("input_block_patch_after_skip", []):
            h = p(h, to)
        return h

    def attend(transformer, h):
        return transformer(h, encoder_hidden_states=context, return_dict=False)[0]

    to["block"] = ("input", 0)
    h = input_done(unet.conv_in(sample), 0)
    for block, (layers, down) in zip(unet.down_blocks, _input_numbers(unet), strict=True):
        attentions = getattr(block, "attentions", None)
        for j, resnet in enumerate(block.resnets):
            to["block"] = ("input", layers[j])
            h = resnet(h, emb)
            if attentions is not None:
                h = attend(attentions[j], h)
            h = input_done(h, layers[j])
        if down is not None:
            to["block"] = ("input", down)
            for downsampler in block.downsamplers:
                h = downsampler(h)
            h = input_done(h, down)
    if down_residuals is not None:
        skips = [s + r for s, r in zip(skips, down_residuals, strict=True)]
    to["block"] = ("middle", 0)
    if unet.mid_block is not None:
        h = unet.mid_block(h, emb, encoder_hidden_states=context)
    if mid_residual is not None:
        h = h + mid_residual
    number = 0
    for block in unet.up_blocks:
        attentions = getattr(block, "attentions", None)
        for j, resnet in enumerate(block.resnets):
            to["block"] = ("output", number)
            skip = skips.pop()
            for p in patches.get("output_block_patch", []):
                h, skip = p(h, skip, to)
            h = resnet(torch.cat([h, skip], dim=1), emb)
            if attentions is not None:
                h = attend(attentions[j], h)
            if j == len(block.resnets) - 1 and getattr(block, "upsamplers", None):
                # Upsample to the next skip's size, as ComfyUI's output blocks do.
                size = skips[-1].shape[2:] if skips else None
                for upsampler in block.upsamplers:
                    h = upsampler(h, size)
            number += 1
    if unet.conv_norm_out is not None:
        h = unet.conv_act(unet.conv_norm_out(h))
    return unet.conv_out(h)
