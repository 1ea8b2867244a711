"""UNetCrossAttentionMultiply: the cross-attention projections (and only they) are scaled, in
every transformer block, while the patched model runs; the self-attention ones stay."""

from __future__ import annotations

import torch

from opencomfy.diffusion.memory import models_in_use
from opencomfy.nodes import model_patches_unet as mu


def test_cross_attention_multiply_scales_only_the_cross_attention(tiny_models):
    model = tiny_models[0]
    unet = model.unet
    before = {n: p.detach().clone() for n, p in unet.named_parameters()}
    (patched,) = mu.UNetCrossAttentionMultiply().patch(model, 0.5, 2.0, 1.5, 0.25)
    factors = {"to_q": 0.5, "to_k": 2.0, "to_v": 1.5, "to_out.0": 0.25}
    with models_in_use(patched):
        now = {n: p.detach().clone() for n, p in unet.named_parameters()}
    scaled = set()
    for name, value in now.items():
        factor = next((f for proj, f in factors.items() if f".attn2.{proj}." in name), 1.0)
        torch.testing.assert_close(value, before[name] * factor, msg=name)
        if factor != 1.0:
            scaled.add(name)
    # q, k, v, out weights and the out bias in each of the tiny UNet's four transformer blocks.
    assert len(scaled) == 4 * 5 and all(".attn2." in n for n in scaled)
    assert all(torch.equal(p, before[n]) for n, p in unet.named_parameters())     # restored
    (same,) = mu.UNetCrossAttentionMultiply().patch(model, 1.0, 1.0, 1.0, 1.0)
    with models_in_use(same):
        assert all(torch.equal(p, before[n]) for n, p in unet.named_parameters())
