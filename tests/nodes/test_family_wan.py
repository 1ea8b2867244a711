"""Wan nodes: latent shapes, concat latents and masks, VACE, camera embeddings, clear errors."""

from __future__ import annotations

import pytest
import torch

from opencomfy.nodes import family_wan as wan
from opencomfy.nodes.family_common import FamilyCapabilityError, latent_format
from opencomfy.nodes.family_wan_camera import WanCameraEmbedding, camera_poses
from tests.nodes.family_fakes import FakeImageVAE, FakeVideoVAE

POS = [[torch.zeros(1, 2, 4), {"p": 1}]]
NEG = [[torch.zeros(1, 2, 4), {"n": 1}]]


def test_image_to_video_without_image_is_the_empty_wan_latent():
    pos, neg, latent = wan.WanImageToVideo().execute(POS, NEG, FakeImageVAE(), 48, 32, 9, 2)
    assert latent["samples"].shape == (2, 16, 3, 4, 6)
    assert pos is POS and neg is NEG                          # nothing to add


def test_image_to_video_encodes_start_frames_and_grey():
    vae = FakeVideoVAE()
    start = torch.ones(2, 16, 16, 3)
    pos, neg, _ = wan.WanImageToVideo().execute(POS, NEG, vae, 16, 16, 9, 1, start_image=start,
                                                clip_vision_output="vision")
    assert vae.calls == [(9, 16, 16, 3)]                       # the whole clip, one call
    concat, mask = pos[0][1]["concat_latent_image"], pos[0][1]["concat_mask"]
    assert concat.shape == (1, 16, 3, 2, 2) and mask.shape == (1, 1, 3, 2, 2)
    assert mask[0, 0, :, 0, 0].tolist() == [0.0, 1.0, 1.0]     # 2 start frames fill latent frame 0
    assert torch.allclose(concat[0, 0, 1], torch.full((2, 2), 0.625))  # frames 1-4: 1, .5, .5, .5
    assert neg[0][1]["concat_latent_image"] is concat and pos[0][1]["clip_vision_output"] == "vision"
    assert pos[0][1]["p"] == 1 and "concat_mask" not in POS[0][1]


def test_image_to_video_with_an_image_vae_names_the_wan_vae():
    with pytest.raises(FamilyCapabilityError, match=r"Wan 2.1 video VAE.*encodes single images"):
        wan.WanImageToVideo().execute(POS, NEG, FakeImageVAE(), 16, 16, 9, 1,
                                      start_image=torch.ones(1, 16, 16, 3))


def test_first_last_frame_mask_is_packed_four_frames_per_latent_frame():
    vae = FakeVideoVAE()
    pos, _, latent = wan.WanFirstLastFrameToVideo().execute(
        POS, NEG, vae, 16, 16, 9, 1, start_image=torch.zeros(1, 16, 16, 3),
        end_image=torch.ones(1, 16, 16, 3))
    mask = pos[0][1]["concat_mask"]
    assert mask.shape == (1, 4, 3, 2, 2)
    # Pixel-frame slots (12 = 3 latent frames x 4): start covers slots 0-3, end the last slot.
    assert mask[0, :, :, 0, 0].T.flatten().tolist() == [0.0] * 4 + [1.0] * 7 + [0.0]
    assert latent["samples"].shape == (1, 16, 3, 2, 2)
    concat = pos[0][1]["concat_latent_image"]
    assert concat[0, 0, 0, 0, 0] == 0.0 and concat[0, 0, 2].mean() == pytest.approx((0.5 * 3 + 1) / 4)


def test_fun_control_fills_its_two_halves():
    vae = FakeVideoVAE()
    pos, _, _ = wan.WanFunControlToVideo().execute(
        POS, NEG, vae, 16, 16, 9, 1, start_image=torch.ones(1, 16, 16, 3),
        control_video=torch.zeros(9, 16, 16, 3))
    concat = pos[0][1]["concat_latent_image"]
    blank = latent_format("Wan21").process_out(torch.zeros(1, 16, 3, 2, 2))
    assert concat.shape == (1, 32, 3, 2, 2)
    assert not concat[:, :16].any()                            # control video (black) encoded
    assert torch.all(concat[:, 16:, 0] == 1.0)                 # the start frame
    assert torch.equal(concat[:, 16:, 1:], blank[:, :, 1:])    # the rest: the latent of zero


def test_wan22_fun_control_reference_and_mask_index():
    pos, _, _ = wan.Wan22FunControlToVideo().execute(POS, NEG, FakeVideoVAE(), 16, 16, 5, 1,
                                                     ref_image=torch.ones(2, 16, 16, 3))
    opts = pos[0][1]
    assert opts["concat_mask_index"] == 16 and opts["concat_mask"].shape == (1, 4, 2, 2, 2)
    assert [r.shape for r in opts["reference_latents"]] == [(1, 16, 1, 2, 2)]


def test_vace_masks_reference_and_trim():
    vae = FakeVideoVAE()
    masks = torch.zeros(5, 16, 16)
    masks[:, :8] = 1.0                                          # regenerate the top half
    pos, _, latent, trim = wan.WanVaceToVideo().execute(
        POS, NEG, vae, 16, 16, 5, 1, 1.5, control_video=torch.ones(5, 16, 16, 3),
        control_masks=masks, reference_image=torch.zeros(1, 16, 16, 3))
    assert trim == 1 and latent["samples"].shape == (1, 16, 3, 2, 2)
    frames, mask = pos[0][1]["vace_frames"][0], pos[0][1]["vace_mask"][0]
    assert frames.shape == (1, 32, 3, 2, 2) and mask.shape == (1, 64, 3, 2, 2)
    assert not mask[:, :, 0].any()                             # the reference frame: never masked
    assert torch.all(mask[0, :, 1:, 0] == 1.0) and not mask[0, :, 1:, 1].any()
    inactive, reactive = frames[0, :16, 1:], frames[0, 16:, 1:]
    assert torch.allclose(inactive[:, :, 1], torch.ones(16, 2, 2))  # kept (bottom) keeps the video
    assert torch.allclose(reactive[:, :, 1], torch.full((16, 2, 2), 0.5))
    assert pos[0][1]["vace_strength"] == [1.5]
    again, *_ = wan.WanVaceToVideo().execute(pos, NEG, vae, 16, 16, 5, 1, 1.0)
    assert len(again[0][1]["vace_frames"]) == 2                 # a second VACE node appends


def test_phantom_encodes_each_subject_alone():
    vae = FakeVideoVAE()
    pos, neg_text, neg_img, _ = wan.WanPhantomSubjectToVideo().execute(
        POS, NEG, vae, 16, 16, 9, 1, images=torch.rand(3, 16, 16, 3))
    assert vae.calls == [(1, 16, 16, 3)] * 3
    assert pos[0][1]["time_dim_concat"].shape == (1, 16, 3, 2, 2)
    assert neg_text[0][1]["time_dim_concat"] is pos[0][1]["time_dim_concat"]
    blank = latent_format("Wan21").process_out(torch.zeros(1, 16, 3, 2, 2))
    assert torch.equal(neg_img[0][1]["time_dim_concat"], blank)


def test_wan22_image_to_video_latent():
    (empty,) = wan.Wan22ImageToVideoLatent().execute(FakeVideoVAE(channels=48, spatial=16), 64, 32, 9, 2)
    assert empty["samples"].shape == (1, 48, 3, 2, 4) and "noise_mask" not in empty
    (latent,) = wan.Wan22ImageToVideoLatent().execute(FakeVideoVAE(channels=48, spatial=16), 64, 32, 9,
                                                      2, start_image=torch.ones(1, 32, 64, 3))
    assert latent["samples"].shape == (2, 48, 3, 2, 4)
    assert latent["noise_mask"][0, 0, :, 0, 0].tolist() == [0.0, 1.0, 1.0]
    blank = latent_format("Wan22").process_out(torch.zeros(1, 48, 3, 2, 4))
    assert torch.all(latent["samples"][:, :, 0] == 1.0)
    assert torch.equal(latent["samples"][0, :, 1:], blank[0, :, 1:])
    with pytest.raises(FamilyCapabilityError, match="Wan 2.2"):
        wan.Wan22ImageToVideoLatent().execute(FakeVideoVAE(), 64, 32, 9, 1,
                                              start_image=torch.ones(1, 32, 64, 3))


def test_trim_video_latent():
    samples = torch.arange(5.0).view(1, 1, 5, 1, 1)
    (out,) = wan.TrimVideoLatent().execute({"samples": samples, "batch_index": [0]}, 2)
    assert out["samples"].flatten().tolist() == [2.0, 3.0, 4.0] and out["batch_index"] == [0]
    with pytest.raises(ValueError, match="video latent"):
        wan.TrimVideoLatent().execute({"samples": torch.zeros(1, 4, 8, 8)}, 1)


def test_camera_embedding_shapes_and_rays():
    embedding, width, height, length = WanCameraEmbedding().execute("Pan Left", 32, 16, 5)
    assert (width, height, length) == (32, 16, 5)
    assert embedding.shape == (1, 24, 2, 16, 32)
    # Static frame 0: the ray through the image centre points straight ahead, from the origin.
    first = embedding[0, [3 * 4 + 0, 4 * 4 + 0, 5 * 4 + 0], 0]     # d_x, d_y, d_z of frame 0
    centre = first[:, 7:9, 15:17].mean(dim=(1, 2))
    assert torch.allclose(centre, torch.tensor([0.0, 0.0, 1.0]), atol=5e-3)
    assert not embedding[0, :12, 0].any()                       # o x d = 0 at the origin
    poses = camera_poses("Pan Left", 1.0, 5)
    assert torch.allclose(poses[4, :3, 3], torch.tensor([-1.5 * 4 / 5, 0.0, 0.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="4k \\+ 1"):
        WanCameraEmbedding().execute("Static", 32, 16, 6)


def test_camera_image_to_video_attaches_the_camera():
    camera = torch.zeros(1, 24, 2, 16, 16)
    pos, neg, _ = wan.WanCameraImageToVideo().execute(POS, NEG, FakeVideoVAE(), 16, 16, 5, 1,
                                                      start_image=torch.ones(1, 16, 16, 3),
                                                      camera_conditions=camera)
    assert pos[0][1]["camera_conditions"] is camera and neg[0][1]["camera_conditions"] is camera
    assert torch.all(pos[0][1]["concat_latent_image"][:, :, 0] == 1.0)
