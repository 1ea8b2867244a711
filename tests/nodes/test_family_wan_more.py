"""WanFunInpaintToVideo: the first/last-frame conditioning with one CLIP vision output, worked
out frame by frame with the fake causal video VAE (latent frame 0 = pixel frame 0, then means of
four frames)."""

from __future__ import annotations

import pytest
import torch

from opencomfy.nodes import family_wan as wan
from tests.nodes.family_fakes import FakeVideoVAE

POS = [[torch.zeros(1, 2, 4), {"p": 1}]]
NEG = [[torch.zeros(1, 2, 4), {"n": 1}]]


def test_fun_inpaint_encodes_start_grey_and_end_frames_with_their_mask():
    vae = FakeVideoVAE()
    start, end = torch.full((2, 16, 16, 3), 0.2), torch.full((1, 16, 16, 3), 0.9)
    pos, neg, latent = wan.WanFunInpaintToVideo().execute(POS, NEG, vae, 16, 16, 9, 2, start_image=start,
                                                          end_image=end, clip_vision_output="vision")
    assert latent["samples"].shape == (2, 16, 3, 2, 2) and not latent["samples"].any()
    assert vae.calls == [(9, 16, 16, 3)]
    concat, mask = pos[0][1]["concat_latent_image"], pos[0][1]["concat_mask"]
    # Pixel frames 0.2, 0.2, 0.5 x 6, 0.9 -> latent frames 0.2, mean(0.2, .5, .5, .5), mean(.5, .5, .5, .9)
    assert concat.shape == (1, 16, 3, 2, 2)
    for frame, value in enumerate((0.2, (0.2 + 1.5) / 4, (1.5 + 0.9) / 4)):
        assert torch.allclose(concat[0, :, frame], torch.full((16, 2, 2), value)), frame
    # 12 mask slots (3 latent frames x 4): the 2 start frames hold 2 + 3 slots, the end frame 1.
    assert mask.shape == (1, 4, 3, 2, 2)
    assert mask[0, :, :, 1, 1].T.flatten().tolist() == [0.0] * 5 + [1.0] * 6 + [0.0]
    assert pos[0][1]["clip_vision_output"] == "vision" and neg[0][1]["clip_vision_output"] == "vision"
    assert neg[0][1]["concat_latent_image"] is concat and pos[0][1]["p"] == 1 and neg[0][1]["n"] == 1
    assert POS[0][1] == {"p": 1}
    # The same as WanFirstLastFrameToVideo with the output as its start image's vision output.
    ref_pos, _, _ = wan.WanFirstLastFrameToVideo().execute(POS, NEG, FakeVideoVAE(), 16, 16, 9, 2,
                                                           start_image=start, end_image=end,
                                                           clip_vision_start_image="vision")
    assert torch.equal(ref_pos[0][1]["concat_latent_image"], concat)
    assert torch.equal(ref_pos[0][1]["concat_mask"], mask)


def test_fun_inpaint_without_images_is_all_grey_and_unmasked():
    pos, _, latent = wan.WanFunInpaintToVideo().execute(POS, NEG, FakeVideoVAE(), 16, 16, 5, 1)
    assert latent["samples"].shape == (1, 16, 2, 2, 2)
    assert torch.allclose(pos[0][1]["concat_latent_image"], torch.full((1, 16, 2, 2, 2), 0.5))
    assert pos[0][1]["concat_mask"].eq(1.0).all() and "clip_vision_output" not in pos[0][1]
    with pytest.raises(TypeError):
        wan.WanFunInpaintToVideo().execute(POS, NEG, FakeVideoVAE(), 16, 16, 5, 1, clip_vision_end_image="x")
