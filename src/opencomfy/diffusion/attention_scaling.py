"""Scaling attention projection weights: the CLIP text encoder's self-attention
(CLIPAttentionMultiply) and the UNet's spatial and temporal attention outputs
(UNetTemporalAttentionMultiply).

A :class:`ScaledWeights` patch multiplies named parameters of one module while its model runs
(``models_in_use`` applies a handle's ``patches`` and restores the weights afterwards), so it
sits in a MODEL's or a CLIP's ``patches`` list beside LoRAs and merges; the CLIP value needs no
other patch mechanism. Biases are scaled with their weights, so a factor scales the
projection's whole output.
"""

from __future__ import annotations

import uuid

import torch

CLIP_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "out_proj")
# Where a video UNet keeps its temporal layers (ComfyUI's LDM names, then diffusers').
TEMPORAL_MARKERS = (".time_stack.", "temporal_transformer_blocks.", "temp_attentions.", "transformer_in.")


class ScaledWeights:
    """``w <- w * factor`` for named parameters of ``module`` (``strength`` interpolates the
    factor from 1)."""

    def __init__(self, module: torch.nn.Module, factors: dict[str, float]):
        self.module = module
        self.factors = factors

    def apply(self, strength: float = 1.0):
        """Scale the weights in place; return the function that restores them."""
        params = dict(self.module.named_parameters())
        saved = {}
        with torch.no_grad():
            for name, factor in self.factors.items():
                weight = params[name]
                saved[name] = weight.detach().clone()
                weight.mul_(1.0 + (factor - 1.0) * strength)

        def restore():
            with torch.no_grad():
                for name, original in saved.items():
                    params[name].copy_(original)
        return restore

    def __len__(self) -> int:
        return len(self.factors)


def clip_attention_multiply(clip, q: float, k: float, v: float, out: float):
    """A clone of ``clip`` whose text towers' self-attention projections are scaled."""
    parts = getattr(clip, "parts", None)
    if parts is None:
        raise ValueError("CLIPAttentionMultiply needs a CLIP loaded by this server")
    wanted = dict(zip(CLIP_PROJECTIONS, (q, k, v, out), strict=True))
    patched = clip.clone()
    for part in parts:
        factors = {}
        for name, _ in part.model.named_parameters():
            for projection, factor in wanted.items():
                if factor != 1.0 and (name.endswith(f"self_attn.{projection}.weight")
                                      or name.endswith(f"self_attn.{projection}.bias")):
                    factors[name] = float(factor)
        if factors:
            patched.patches.append((ScaledWeights(part.model, factors), 1.0))
    return patched


def unet_attention_output_multiply(model, self_structural: float, self_temporal: float,
                                   cross_structural: float, cross_temporal: float):
    """A clone of ``model`` (a MODEL) with the output projections of its self-attention
    (``attn1``) and cross-attention (``attn2``) scaled, temporal layers by their own factors.
    Only the parameters the UNet has are touched: an image UNet has no temporal layers."""
    unet = model.model.diffusion_model
    factors = {}
    for name, _ in unet.named_parameters():
        for kind, structural, temporal in (("attn1", self_structural, self_temporal),
                                           ("attn2", cross_structural, cross_temporal)):
            if name.endswith((f"{kind}.to_out.0.weight", f"{kind}.to_out.0.bias")):
                factor = temporal if any(m in name for m in TEMPORAL_MARKERS) else structural
                if factor != 1.0:
                    factors[name] = float(factor)
    patched = model.clone()
    if factors:
        patched.patches.append((ScaledWeights(unet, factors), 1.0))
        patched.patches_uuid = uuid.uuid4()
    return patched
