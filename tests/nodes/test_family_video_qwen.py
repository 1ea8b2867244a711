"""HunyuanVideo, Cosmos and video-area nodes; Qwen-Image edit encoders and layered latent."""

from __future__ import annotations

import pytest
import torch

from opencomfy.nodes import family_qwen as qwen
from opencomfy.nodes import family_video as video
from opencomfy.nodes.family_common import FamilyCapabilityError, latent_format
from tests.nodes.family_fakes import FakeClip, FakeImageVAE, FakeVideoVAE

POS = [[torch.zeros(1, 2, 4), {}]]


@pytest.mark.parametrize("guidance", ["v1 (concat)", "v2 (replace)", "custom"])
def test_hunyuan_image_to_video_guidance_types(guidance):
    pos, latent = video.HunyuanImageToVideo().encode(POS, FakeVideoVAE(), 16, 16, 9, 2, guidance,
                                                     start_image=torch.ones(1, 16, 16, 3))
    assert latent["samples"].shape == (2, 16, 3, 2, 2)
    opts = pos[0][1]
    if guidance == "v1 (concat)":
        assert opts["concat_latent_image"].shape == (1, 16, 1, 2, 2)
        assert opts["concat_mask"][0, 0, :, 0, 0].tolist() == [0.0, 1.0, 1.0]
    elif guidance == "v2 (replace)":
        assert opts["guiding_frame_index"] == 0 and torch.all(latent["samples"][:, :, 0] == 1.0)
        assert latent["noise_mask"][0, 0, :, 0, 0].tolist() == [0.0, 1.0, 1.0]
    else:
        assert opts["ref_latent"].shape == (1, 16, 1, 2, 2)


def test_hunyuan_without_image_and_with_an_image_vae():
    pos, latent = video.HunyuanImageToVideo().encode(POS, FakeImageVAE(), 32, 16, 5, 1, "custom")
    assert pos is POS and latent["samples"].shape == (1, 16, 2, 2, 4)
    with pytest.raises(FamilyCapabilityError, match="HunyuanVideo video VAE"):
        video.HunyuanImageToVideo().encode(POS, FakeImageVAE(), 16, 16, 5, 1, "custom",
                                           start_image=torch.ones(1, 16, 16, 3))


def test_hunyuan_text_encoders_need_their_towers():
    class Vision:
        mm_projected = torch.zeros(1, 4, 8)

    with pytest.raises(FamilyCapabilityError, match="llava-llama-3.*image_embeds"):
        video.TextEncodeHunyuanVideo_ImageToVideo().encode(FakeClip(), Vision(), "a cat", 2)
    with pytest.raises(ValueError, match="multimodal projected"):
        video.TextEncodeHunyuanVideo_ImageToVideo().encode(FakeClip(), object(), "a cat", 2)
    with pytest.raises(FamilyCapabilityError, match="mT5-XL"):
        video.CLIPTextEncodeHunyuanDiT().encode(FakeClip(), "a", "b")
    clip = FakeClip(("bert", "mt5xl"))
    video.CLIPTextEncodeHunyuanDiT().encode(clip, "a", "b c")
    assert len(clip.encoded[0]["mt5xl"][0]) == 2


def test_hunyuan_refiner_latent():
    samples = torch.rand(2, 16, 3, 4, 4)
    pos, neg, latent = video.HunyuanRefinerLatent().execute(POS, POS, {"samples": samples}, 0.2)
    assert pos[0][1]["concat_latent_image"] is samples and neg[0][1]["noise_augmentation"] == 0.2
    assert latent["samples"].shape == (2, 32, 3, 4, 4)


def test_cosmos_latents_with_start_and_end_frames():
    (latent,) = video.CosmosImageToVideoLatent().execute(FakeVideoVAE(temporal=8), 16, 16, 25, 2,
                                                         start_image=torch.ones(1, 16, 16, 3),
                                                         end_image=torch.full((1, 16, 16, 3), 0.25))
    assert latent["samples"].shape == (2, 16, 4, 2, 2)
    assert latent["noise_mask"][0, 0, :, 0, 0].tolist() == [0.0, 1.0, 1.0, 0.0]
    assert torch.all(latent["samples"][:, :, 0] == 1.0) and torch.all(latent["samples"][:, :, 3] == 0.25)
    (latent,) = video.CosmosPredict2ImageToVideoLatent().execute(
        FakeVideoVAE(temporal=4), 16, 16, 9, 1, start_image=torch.ones(1, 16, 16, 3))
    blank = latent_format("Wan21").process_out(torch.zeros(1, 16, 3, 2, 2))
    assert torch.equal(latent["samples"][:, :, 1:], blank[:, :, 1:])
    (empty,) = video.CosmosImageToVideoLatent().execute(FakeImageVAE(), 16, 16, 25, 1)
    assert empty["samples"].shape == (1, 16, 4, 2, 2)


def test_video_area_percentage():
    (out,) = video.ConditioningSetAreaPercentageVideo().append(POS, 0.5, 0.25, 1.0, 0.1, 0.2, 0.3, 2.0)
    assert out[0][1]["area"] == ("percentage", 1.0, 0.25, 0.5, 0.3, 0.2, 0.1)
    assert out[0][1]["strength"] == 2.0 and out[0][1]["set_area_to_bounds"] is False


def test_qwen_layered_latent():
    (latent,) = qwen.EmptyQwenImageLayeredLatentImage().execute(64, 32, 2, 3)
    assert latent["samples"].shape == (3, 16, 3, 4, 8)


def test_qwen_scaling_to_a_pixel_count():
    image = torch.rand(1, 100, 200, 4)
    out = qwen.scale_to_pixels(image, 384 * 384)
    assert out.shape == (1, 272, 543, 3)
    out = qwen.scale_to_pixels(image, 1024 * 1024, multiple=8)
    assert out.shape[1] % 8 == 0 and out.shape[2] % 8 == 0


class _VisionClip(FakeClip):
    """A text encoder whose tokenizer takes images, as Qwen2.5-VL's does."""

    def tokenize(self, text, images=None, **kwargs):
        self.images = images
        return {"qwen": [[(len(text), 1.0)]]}


def test_qwen_edit_plus_announces_pictures_and_collects_references():
    clip = _VisionClip()
    image = torch.rand(1, 32, 64, 3)
    (cond,) = qwen.TextEncodeQwenImageEditPlus().execute(clip, "make it red", FakeImageVAE(),
                                                         image1=image, image3=image)
    assert len(clip.images) == 2 and clip.images[0].shape[-1] == 3
    assert [r.shape[1] for r in cond[0][1]["reference_latents"]] == [4, 4]
    prompt_len = clip.encoded[0]["qwen"][0][0][0]
    expected = "Picture 1: <|vision_start|><|image_pad|><|vision_end|>" \
               "Picture 3: <|vision_start|><|image_pad|><|vision_end|>make it red"
    assert prompt_len == len(expected)


def test_qwen_edit_names_the_missing_vision_language_encoder():
    with pytest.raises(FamilyCapabilityError, match=r"Qwen2.5-VL.*cannot take images"):
        qwen.TextEncodeQwenImageEdit().execute(FakeClip(), "a", FakeImageVAE(), torch.rand(1, 8, 8, 3))
    clip = _VisionClip()
    (cond,) = qwen.TextEncodeQwenImageEdit().execute(clip, "a", FakeImageVAE(), torch.rand(1, 64, 64, 3))
    assert clip.images[0].shape == (1, 1024, 1024, 3)
    assert cond[0][1]["reference_latents"][0].shape == (1, 4, 128, 128)
