"""Attention and transformer-block patch nodes (SAG, Skip Layer Guidance, CLIP/temporal attention
scaling, HyperTile, ToMe) on the tiny SD 1.x checkpoint, each against a computation of its own:
attention processors and module swaps written here, scipy's convolution, brute-force merging."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from opencomfy.diffusion import conditioning as conds
from opencomfy.diffusion import guiders
from opencomfy.diffusion.memory import models_in_use
from opencomfy.nodes import model_patches_attention as pa


@pytest.fixture(scope="module")
def parts(tiny_models):
    from opencomfy.nodes.diffusion_conditioning import CLIPTextEncode

    model, clip, _vae = tiny_models
    pos = CLIPTextEncode().encode(clip, "a lighthouse")[0]
    neg = CLIPTextEncode().encode(clip, "blurry")[0]
    return model, clip, pos, neg


def _resolved(model, conditioning, size=8):
    return conds.resolve(conditioning, schedule=model.schedule, height=size, width=size)


def _latent(size=8, seed=0, sigma=3.0):
    return torch.randn(1, 4, size, size, generator=torch.Generator().manual_seed(seed)) * sigma


def _timestep(sigma=3.0):
    return torch.full((1,), sigma, dtype=torch.float64)


def _predict(model, cond_lists, x, sigma=3.0, options=None):
    with torch.no_grad(), models_in_use(model):
        return guiders.calc_cond_batch(model, cond_lists, x, _timestep(sigma),
                                       model.model_options if options is None else options)


def _guided(model, pos, neg, x, cfg=5.0, sigma=3.0):
    with torch.no_grad(), models_in_use(model):
        guided, _ = guiders.sampling_function(model, x, _timestep(sigma), neg, pos, cfg, model.model_options)
    return guided


def _call(model, x, sigma=3.0, options=None):
    context = torch.randn(1, 77, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad(), models_in_use(model):
        return model.denoise_batch(x, sigma, context, model_options=model.model_options if options is None
                                   else options, cond_or_uncond=[0])


class _Processor:
    """Plain scaled-dot-product attention written out, optionally within groups of tokens
    (``groups[i]``: the group of token i) and recording the probabilities."""

    def __init__(self, groups=None):
        self.groups = groups
        self.probs = None

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, **kw):
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        q, k, v = attn.to_q(hidden_states), attn.to_k(context), attn.to_v(context)
        b, n, inner = q.shape
        d = inner // attn.heads
        q, k, v = (t.reshape(b, -1, attn.heads, d).transpose(1, 2) for t in (q, k, v))
        scores = q @ k.transpose(-1, -2) / math.sqrt(d)
        if self.groups is not None:
            same = self.groups[:, None] == self.groups[None, :]
            scores = scores.masked_fill(~same, float("-inf"))
        probs = scores.softmax(-1)
        self.probs = probs
        out = (probs @ v).transpose(1, 2).reshape(b, n, inner)
        return attn.to_out[1](attn.to_out[0](out))


class _swap_processors:
    def __init__(self, modules, processor):
        self.modules, self.processor, self.saved = modules, processor, []

    def __enter__(self):
        self.saved = [m.processor for m in self.modules]
        for m in self.modules:
            m.processor = self.processor
        return self.processor

    def __exit__(self, *exc):
        for m, p in zip(self.modules, self.saved, strict=True):
            m.processor = p


class _Skip(torch.nn.Module):
    def forward(self, hidden_states, *args, **kwargs):
        return hidden_states


class _skipped_middle_block:
    """The UNet with its middle transformer block (double layer 1 of the tiny UNet) removed."""

    def __init__(self, model):
        self.transformer = model.unet.mid_block.attentions[0]

    def __enter__(self):
        self.block = self.transformer.transformer_blocks[0]
        self.transformer.transformer_blocks[0] = _Skip()

    def __exit__(self, *exc):
        self.transformer.transformer_blocks[0] = self.block


def _middle_attn1(model):
    return model.unet.mid_block.attentions[0].transformer_blocks[0].attn1


def _full_res_attn1(model):
    unet = model.unet
    return [unet.down_blocks[0].attentions[0].transformer_blocks[0].attn1,
            *(a.transformer_blocks[0].attn1 for a in unet.up_blocks[1].attentions)]


# --- Self-Attention Guidance ----------------------------------------------------------------

def _blur_by_hand(image: np.ndarray, sigma: float) -> np.ndarray:
    from scipy.ndimage import convolve

    taps = np.exp(-0.5 * (np.arange(-4, 5) / sigma) ** 2)
    kernel = np.outer(taps, taps) / taps.sum() ** 2
    return np.stack([convolve(channel, kernel, mode="mirror") for channel in image])


def test_sag_step_equals_the_step_computed_by_hand(parts):
    model, _clip, pos, neg = parts
    cond, uncond = _resolved(model, pos), _resolved(model, neg)
    x = _latent()
    patched = pa.SelfAttentionGuidance().patch(model, 0.7, 2.0)[0]
    got = _guided(patched, cond, uncond, x)

    c, u = _predict(model, [cond, uncond], x)
    with _swap_processors([_middle_attn1(model)], _Processor()) as recorder, torch.no_grad():
        _predict(model, [uncond], x)
    probs = recorder.probs[0]                                   # [heads, 16 queries, 16 keys]
    attended = (probs.mean(0).sum(0) > 1.0).float().reshape(4, 4)
    assert 0 < attended.sum() < 16                             # some regions, not all
    mask = attended.repeat_interleave(2, 0).repeat_interleave(2, 1)       # to the 8x8 latent
    blurred = torch.from_numpy(_blur_by_hand(u[0].double().numpy(), 2.0)).float()[None]
    degraded = blurred * mask + u * (1 - mask)
    (again,) = _predict(model, [uncond], degraded + x - u)
    expected = u + (c - u) * 5.0 + (degraded - again) * 0.7
    torch.testing.assert_close(got, expected, atol=2e-4, rtol=2e-4)


def test_sag_leaves_tiny_latents_and_zero_blur_alone(parts):
    model, _clip, pos, neg = parts
    small = _latent(size=4)
    patched = pa.SelfAttentionGuidance().patch(model, 0.7, 2.0)[0]
    plain = _guided(model, _resolved(model, pos, 4), _resolved(model, neg, 4), small)
    # (The recording attention is computed explicitly, not by SDPA: equal up to rounding.)
    torch.testing.assert_close(_guided(patched, _resolved(model, pos, 4), _resolved(model, neg, 4), small), plain,
                               atol=1e-4, rtol=1e-4)
    # No blur: the degraded prediction is the negative itself, re-predicted from the same input.
    cond, uncond = _resolved(model, pos), _resolved(model, neg)
    x = _latent()
    c, u = _predict(model, [cond, uncond], x)
    unblurred = pa.SelfAttentionGuidance().patch(model, 1.0, 0.0)[0]
    (again,) = _predict(model, [uncond], x)
    torch.testing.assert_close(_guided(unblurred, cond, uncond, x), u + (c - u) * 5.0 + (u - again),
                               atol=1e-4, rtol=1e-4)


# --- Skip Layer Guidance ------------------------------------------------------------------

def test_double_block_replacement_skips_a_unet_transformer_block(parts):
    from opencomfy.diffusion.transformer_blocks import block_counts

    model = parts[0]
    assert block_counts(model.unet) == {"double_block": 4, "single_block": 0}
    x = _latent()
    options = {"transformer_options": {"patches_replace": {"dit": {("double_block", 1): lambda a, e: a}}}}
    skipped = _call(model, x, options=options)
    with _skipped_middle_block(model):
        expected = _call(model, x)
    torch.testing.assert_close(skipped, expected)
    assert not torch.allclose(skipped, _call(model, x))
    # A replacement that runs the original block changes nothing.
    options["transformer_options"]["patches_replace"]["dit"][("double_block", 1)] = \
        lambda a, e: e["original_block"](a)
    torch.testing.assert_close(_call(model, x, options=options), _call(model, x))


def test_skip_layer_guidance_adds_the_skipped_difference(parts):
    model, _clip, pos, neg = parts
    cond, uncond = _resolved(model, pos), _resolved(model, neg)
    x = _latent()
    c, u = _predict(model, [cond, uncond], x)
    with _skipped_middle_block(model):
        (s,) = _predict(model, [cond], x)
    plain = u + (c - u) * 5.0
    slg = pa.SkipLayerGuidanceDiT().skip_guidance(model, 2.0, 0.0, 1.0, "1", "7, 8, 9", 0.0)[0]
    torch.testing.assert_close(_guided(slg, cond, uncond, x), plain + (c - s) * 2.0, atol=1e-4, rtol=1e-4)
    sd3 = pa.SkipLayerGuidanceSD3().skip_guidance_sd3(model, "1", 2.0, 0.0, 1.0)[0]
    torch.testing.assert_close(_guided(sd3, cond, uncond, x), plain + (c - s) * 2.0, atol=1e-4, rtol=1e-4)
    rescaled = pa.SkipLayerGuidanceDiT().skip_guidance(model, 2.0, 0.0, 1.0, "1", "", 0.5)[0]
    g = plain + (c - s) * 2.0
    expected = g * (0.5 * (c.std() / g.std()) + 0.5)
    torch.testing.assert_close(_guided(rescaled, cond, uncond, x), expected, atol=1e-4, rtol=1e-4)
    # Outside the window (here: only the middle of the schedule), plain CFG.
    outside = pa.SkipLayerGuidanceDiT().skip_guidance(model, 2.0, 0.5, 0.5, "1", "", 0.0)[0]
    torch.testing.assert_close(_guided(outside, cond, uncond, x), plain, atol=1e-5, rtol=1e-5)


def test_skip_layer_guidance_simple_skips_in_the_negative(parts):
    model, _clip, pos, neg = parts
    cond, uncond = _resolved(model, pos), _resolved(model, neg)
    x = _latent()
    (c,) = _predict(model, [cond], x)
    with _skipped_middle_block(model):
        (su,) = _predict(model, [uncond], x)
    simple = pa.SkipLayerGuidanceDiTSimple().skip_guidance(model, 0.0, 1.0, "1", "")[0]
    torch.testing.assert_close(_guided(simple, cond, uncond, x), su + (c - su) * 5.0, atol=1e-4, rtol=1e-4)


def test_skip_layer_guidance_refuses_layers_the_model_lacks(parts):
    model = parts[0]
    node = pa.SkipLayerGuidanceDiT()
    with pytest.raises(ValueError, match="4 double and 0 single"):
        node.skip_guidance(model, 3.0, 0.0, 1.0, "", "1, 2")
    with pytest.raises(ValueError, match=r"double layers \[7\] do not exist"):
        node.skip_guidance(model, 3.0, 0.0, 1.0, "1, 7", "")
    assert node.skip_guidance(model, 3.0, 0.0, 1.0, "", " ")[0] is model
    with pytest.raises(ValueError, match="do not exist"):
        pa.SkipLayerGuidanceDiTSimple().skip_guidance(model, 0.0, 1.0, "7, 8, 9", "7, 8, 9")


# --- attention weight scaling ---------------------------------------------------------------

def _encode(clip, text="a lighthouse by the sea"):
    return clip.encode_from_tokens(clip.tokenize(text), return_pooled=True)


def test_clip_attention_multiply_against_hand_scaled_weights(parts):
    _model, clip, _pos, _neg = parts
    plain = _encode(clip)
    same = pa.CLIPAttentionMultiply().patch(clip, 1.0, 1.0, 1.0, 1.0)[0]
    assert same.patches == clip.patches
    for a, b in zip(_encode(same), plain, strict=True):
        torch.testing.assert_close(a, b)
    patched = pa.CLIPAttentionMultiply().patch(clip, 0.0, 2.0, 0.5, 3.0)[0]
    got = _encode(patched)
    tower = clip.parts[0].model
    before = copy.deepcopy(tower.state_dict())
    factors = {"q_proj": 0.0, "k_proj": 2.0, "v_proj": 0.5, "out_proj": 3.0}
    with torch.no_grad():
        for name, p in tower.named_parameters():
            for proj, f in factors.items():
                if f".self_attn.{proj}." in name:
                    p.mul_(f)
        try:
            expected = _encode(clip)
        finally:
            tower.load_state_dict(before)
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b)
    assert not torch.allclose(got[0], plain[0])
    for a, b in zip(_encode(clip), plain, strict=True):       # the original CLIP is unchanged
        torch.testing.assert_close(a, b)


def test_temporal_attention_multiply_scales_only_what_exists(parts):
    model = parts[0]
    only_temporal = pa.UNetTemporalAttentionMultiply().patch(model, 1.0, 3.0, 1.0, 0.5)[0]
    assert only_temporal.patches == []             # an image UNet has no temporal layers
    patched = pa.UNetTemporalAttentionMultiply().patch(model, 2.0, 1.0, 0.5, 1.0)[0]
    attn1, attn2 = _middle_attn1(model), model.unet.mid_block.attentions[0].transformer_blocks[0].attn2
    w1, b1, w2 = (t.detach().clone() for t in (attn1.to_out[0].weight, attn1.to_out[0].bias, attn2.to_out[0].weight))
    q = attn1.to_q.weight.detach().clone()
    with models_in_use(patched):
        torch.testing.assert_close(attn1.to_out[0].weight, w1 * 2.0)
        torch.testing.assert_close(attn1.to_out[0].bias, b1 * 2.0)
        torch.testing.assert_close(attn2.to_out[0].weight, w2 * 0.5)
        torch.testing.assert_close(attn1.to_q.weight, q)
    assert torch.equal(attn1.to_out[0].weight, w1)


# --- HyperTile --------------------------------------------------------------------------------

def test_hypertile_tile_choice_and_layout():
    import random

    from opencomfy.diffusion.hypertile import from_tiles, tile_count, to_tiles

    rng = random.Random(0)
    assert tile_count(8, 4, 1, rng) == 2 and tile_count(4, 4, 1, rng) == 1
    assert {tile_count(16, 4, 2, random.Random(s)) for s in range(20)} == {4, 2}
    grid = torch.arange(6 * 8).reshape(1, 6 * 8, 1).float()
    tiles = to_tiles(grid, 6, 8, 2, 2)                       # 4 tiles of 3x4 tokens
    assert tiles.shape == (4, 12, 1)
    assert tiles[1, :, 0].tolist() == [r * 8 + c for r in range(3) for c in range(4, 8)]
    assert torch.equal(from_tiles(tiles, 6, 8, 2, 2), grid)


def test_hypertile_below_threshold_is_unpatched_and_above_attends_in_tiles(parts):
    model = parts[0]
    patched = pa.HyperTile().patch(model, 32, 1, 0, False)[0]       # tiles of at least 4 latent pixels
    small = _latent(size=4)
    torch.testing.assert_close(_call(patched, small), _call(model, small))
    x = _latent(size=8)
    got = _call(patched, x)
    rows, cols = torch.arange(64) // 8, torch.arange(64) % 8
    with _swap_processors(_full_res_attn1(model), _Processor(groups=(rows // 4) * 2 + cols // 4)):
        expected = _call(model, x)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(got, _call(model, x), atol=1e-4)


# --- ToMe ---------------------------------------------------------------------------------------

def _brute_force_merge(x, metric, is_dst, r):
    """Each source joins its most similar destination; the r most similar sources merge."""
    unit = metric / metric.norm(dim=-1, keepdim=True)
    dst, src = torch.nonzero(is_dst)[:, 0], torch.nonzero(~is_dst)[:, 0]
    sims = unit[0, src] @ unit[0, dst].T
    best, target = sims.max(-1)
    merged = set(best.argsort(descending=True)[:r].tolist())
    groups = {int(d): [int(d)] for d in dst}
    for i, s in enumerate(src.tolist()):
        if i in merged:
            groups[int(dst[target[i]])].append(s)
    out = x.clone()
    for members in groups.values():
        out[0, members] = x[0, members].mean(0)
    return out


def test_tome_merges_the_most_similar_tokens_like_brute_force():
    from opencomfy.diffusion.tome import bipartite_merge, destination_mask

    gen = torch.Generator().manual_seed(3)
    metric = torch.randn(1, 16, 8, generator=gen)
    x = torch.randn(1, 16, 5, generator=gen)
    is_dst = destination_mask(4, 4, torch.Generator().manual_seed(7))
    assert is_dst.sum() == 4 and all(is_dst.reshape(4, 4)[r:r + 2, c:c + 2].sum() == 1
                                     for r in (0, 2) for c in (0, 2))
    for r in (12, 5):
        merge, unmerge = bipartite_merge(metric, 4, 4, r, torch.Generator().manual_seed(7))
        assert merge(x).shape == (1, 16 - r, 5)
        torch.testing.assert_close(unmerge(merge(x)), _brute_force_merge(x, metric, is_dst, r))


def test_tome_ratio_zero_is_unpatched_and_merging_cuts_the_queries(parts):
    model = parts[0]
    x = _latent()
    zero = pa.TomePatchModel().patch(model, 0.0)[0]
    torch.testing.assert_close(_call(zero, x), _call(model, x))
    merged = pa.TomePatchModel().patch(model, 0.5)[0]
    seen = []
    merged.set_model_attn1_patch(lambda n, c, v, extra: (seen.append((n.shape[1], c.shape[1])), (n, c, v))[1])
    out = _call(merged, x)
    assert torch.isfinite(out).all() and not torch.allclose(out, _call(model, x))
    # Full resolution (64 tokens): half the queries merged, keys and values all kept; the
    # middle block (16 tokens) is left alone.
    assert seen == [(32, 64), (16, 16), (32, 64), (32, 64)]
