"""LTX-Video nodes: frame rate, image-to-video, guides in and out, preprocessing, schedule."""

from __future__ import annotations

import math

import pytest
import torch

from opencomfy.nodes import family_ltxv as ltx
from opencomfy.nodes.family_common import FamilyCapabilityError
from tests.nodes.family_fakes import FakeImageVAE, FakeVideoVAE

POS = [[torch.zeros(1, 2, 4), {}]]
NEG = [[torch.ones(1, 2, 4), {}]]


def _vae():
    return FakeVideoVAE(temporal=8, spatial=32, channels=128)


def test_frame_rate_goes_on_both():
    pos, neg = ltx.LTXVConditioning().execute(POS, NEG, 24.0)
    assert pos[0][1]["frame_rate"] == 24.0 and neg[0][1]["frame_rate"] == 24.0


def test_img_to_video_keeps_the_first_frame_by_strength():
    _, _, latent = ltx.LTXVImgToVideo().execute(POS, NEG, _vae(), torch.ones(1, 64, 64, 3), 64, 64,
                                                17, 2, 0.75)
    assert latent["samples"].shape == (2, 128, 3, 2, 2)
    assert torch.all(latent["samples"][:, :, 0] == 1.0) and not latent["samples"][:, :, 1:].any()
    assert latent["noise_mask"].shape == (2, 1, 3, 1, 1)
    assert latent["noise_mask"][0, 0, :, 0, 0].tolist() == [0.25, 1.0, 1.0]


def test_img_to_video_inplace_writes_into_the_given_latent():
    latent = {"samples": torch.full((1, 128, 3, 2, 2), 0.5), "noise_mask": torch.ones(1, 1, 3, 1, 1)}
    (out,) = ltx.LTXVImgToVideoInplace().execute(_vae(), torch.ones(1, 30, 40, 3), latent, 0.6)
    assert torch.all(out["samples"][:, :, 0] == 1.0) and torch.all(out["samples"][:, :, 1:] == 0.5)
    assert out["noise_mask"][0, 0, :, 0, 0].tolist() == pytest.approx([0.4, 1.0, 1.0])
    assert latent["noise_mask"].all()                           # the input is not changed
    (same,) = ltx.LTXVImgToVideoInplace().execute(FakeImageVAE(), torch.ones(1, 8, 8, 3), latent, 1.0, True)
    assert same is latent


def test_add_guide_appends_frames_and_keyframe_positions_then_crop_removes_them():
    vae = _vae()
    latent = {"samples": torch.zeros(1, 128, 4, 2, 2)}
    pos, neg, guided = ltx.LTXVAddGuide().execute(POS, NEG, vae, latent, torch.ones(1, 64, 64, 3), 0, 0.8)
    assert guided["samples"].shape == (1, 128, 5, 2, 2)
    assert torch.all(guided["samples"][:, :, 4] == 1.0)
    assert guided["noise_mask"][0, 0, :, 0, 0].tolist() == pytest.approx([1, 1, 1, 1, 0.2])
    idxs = pos[0][1]["keyframe_idxs"]
    assert idxs.shape == (1, 3, 4, 2)                           # 1 frame x 2 x 2 tokens, (start, end)
    assert idxs[0, 0, :, :].tolist() == [[0.0, 1.0]] * 4        # causal first frame: frame 0 only
    assert idxs[0, 1, :, 0].tolist() == [0.0, 0.0, 32.0, 32.0]  # rows in pixels
    assert idxs[0, 2, :, 1].tolist() == [32.0, 64.0, 32.0, 64.0]
    assert neg[0][1]["guide_attention_entries"][0]["pre_filter_count"] == 4

    # A second guide at frame 17: latent frame 2, positions shifted by 17 frames.
    pos, neg, guided = ltx.LTXVAddGuide().execute(pos, neg, vae, guided, torch.zeros(1, 64, 64, 3), 17, 1.0)
    assert guided["samples"].shape == (1, 128, 6, 2, 2)
    assert pos[0][1]["keyframe_idxs"].shape == (1, 3, 8, 2)
    assert pos[0][1]["keyframe_idxs"][0, 0, 4:, 0].tolist() == [17.0] * 4
    assert len(pos[0][1]["guide_attention_entries"]) == 2

    pos, neg, cropped = ltx.LTXVCropGuides().execute(pos, neg, guided)
    assert cropped["samples"].shape == (1, 128, 4, 2, 2) and cropped["noise_mask"].shape[2] == 4
    assert pos[0][1]["keyframe_idxs"] is None and neg[0][1]["guide_attention_entries"] is None


def test_add_guide_clip_in_the_middle_and_errors():
    vae = _vae()
    latent = {"samples": torch.zeros(1, 128, 4, 2, 2)}
    # 9 frames at frame 9 -> latent index 1; a throwaway first frame is encoded and dropped.
    _, _, guided = ltx.LTXVAddGuide().execute(POS, NEG, vae, latent, torch.ones(9, 64, 64, 3), 9, 1.0)
    assert vae.calls[-1] == (9, 64, 64, 3) and guided["samples"].shape == (1, 128, 5, 2, 2)
    with pytest.raises(ValueError, match="runs past"):
        ltx.LTXVAddGuide().execute(POS, NEG, vae, latent, torch.ones(1, 64, 64, 3), 40, 1.0)
    with pytest.raises(FamilyCapabilityError, match="LTX-Video VAE"):
        ltx.LTXVAddGuide().execute(POS, NEG, FakeImageVAE(), latent, torch.ones(1, 64, 64, 3), 0, 1.0)
    with pytest.raises(ValueError, match="LTXV video latent"):
        ltx.LTXVAddGuide().execute(POS, NEG, vae, {"samples": torch.zeros(1, 4, 8, 8)},
                                   torch.ones(1, 64, 64, 3), 0, 1.0)


def test_crop_guides_without_guides_returns_the_latent_and_a_full_mask():
    pos, _, out = ltx.LTXVCropGuides().execute(POS, NEG, {"samples": torch.ones(1, 128, 3, 1, 1)})
    assert pos is POS and out["noise_mask"].shape == (1, 1, 3, 1, 1) and out["noise_mask"].all()


def test_preprocess_compresses_and_evens_the_size():
    torch.manual_seed(0)
    image = torch.rand(2, 17, 23, 3)
    (same,) = ltx.LTXVPreprocess().execute(image, 0)
    assert same is image
    (light,) = ltx.LTXVPreprocess().execute(image, 5)
    (heavy,) = ltx.LTXVPreprocess().execute(image, 50)
    assert light.shape == heavy.shape == (2, 16, 22, 3)
    base = image[:, :16, :22]
    assert (light - base).abs().mean() < (heavy - base).abs().mean()


def _published_ltxv(steps, max_shift, base_shift, stretch, terminal, tokens):
    m = (max_shift - base_shift) / (4096 - 1024)
    s = tokens * m + base_shift - m * 1024
    out = [math.exp(s) / (math.exp(s) + (1 / t - 1)) if t > 0 else 0.0
           for t in (1 - i / steps for i in range(steps + 1))]
    if stretch:
        last = 1 - out[-2]
        out = [1 - (1 - v) * (1 - terminal) / last if v else 0.0 for v in out]
    return out


@pytest.mark.parametrize(("stretch", "latent"), [(True, None), (False, None),
                                                 (True, {"samples": torch.zeros(1, 128, 4, 16, 24)})])
def test_ltxv_scheduler_matches_the_published_formula(stretch, latent):
    (sigmas,) = ltx.LTXVScheduler().execute(10, 2.05, 0.95, stretch, 0.1, latent)
    tokens = 4096 if latent is None else 4 * 16 * 24
    expected = _published_ltxv(10, 2.05, 0.95, stretch, 0.1, tokens)
    assert torch.allclose(sigmas, torch.tensor(expected, dtype=torch.float32), atol=1e-5)
    if stretch:
        assert sigmas[-2].item() == pytest.approx(0.1, abs=1e-5) and sigmas[-1] == 0
