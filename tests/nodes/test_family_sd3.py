"""SD3 / HiDream / SDXL text encoders and loaders, and the SD special-model conditionings."""

from __future__ import annotations

import math

import pytest
import torch

from opencomfy.nodes import family_sd3 as sd3
from opencomfy.nodes import family_sd_conditioning as sdc
from opencomfy.nodes.family_common import FamilyCapabilityError
from tests.nodes.family_fakes import FakeClip, FakeImageVAE


def test_sdxl_encode_pads_the_shorter_tower_and_sets_the_size_options():
    clip = FakeClip(("l", "g"))
    clip.tokenize = lambda text: {k: [[(1, 1.0)]] * (2 if text == "long" else 1) for k in ("l", "g")}
    (cond,) = sd3.CLIPTextEncodeSDXL().execute(clip, 1024, 768, 8, 16, 512, 384, "long", "short")
    tokens = clip.encoded[0]
    assert len(tokens["g"]) == 2 and len(tokens["l"]) == 2   # l padded with the empty prompt
    opts = cond[0][1]
    assert (opts["width"], opts["height"], opts["crop_w"], opts["crop_h"]) == (1024, 768, 8, 16)
    assert (opts["target_width"], opts["target_height"]) == (512, 384)
    assert "pooled_output" in opts


def test_sdxl_refiner_sets_the_aesthetic_score():
    (cond,) = sd3.CLIPTextEncodeSDXLRefiner().execute(2.5, 800, 600, "a cat", FakeClip(("g",)))
    assert (cond[0][1]["aesthetic_score"], cond[0][1]["width"], cond[0][1]["height"]) == (2.5, 800, 600)


def test_sd3_encode_leaves_out_empty_towers_with_no_padding():
    clip = FakeClip(("l", "g", "t5xxl"))
    sd3.CLIPTextEncodeSD3().execute(clip, "", "one two", "", "none")
    tokens = clip.encoded[0]
    assert tokens["t5xxl"] == [] and len(tokens["g"]) == 1 and len(tokens["l"]) == 1
    clip.encoded.clear()
    sd3.CLIPTextEncodeSD3().execute(clip, "", "one two", "", "empty_prompt")
    assert clip.encoded[0]["t5xxl"] == [[]]                  # the empty prompt's (empty) chunk


def test_sd3_and_hidream_encoders_name_the_missing_towers():
    with pytest.raises(FamilyCapabilityError, match=r"SD3.*missing t5xxl"):
        sd3.CLIPTextEncodeSD3().execute(FakeClip(("l", "g")), "a", "b", "c", "none")
    with pytest.raises(FamilyCapabilityError, match=r"HiDream.*missing t5xxl, llama"):
        sd3.CLIPTextEncodeHiDream().execute(FakeClip(("l", "g")), "a", "b", "c", "d")
    clip = FakeClip(("l", "g", "t5xxl", "llama"))
    sd3.CLIPTextEncodeHiDream().execute(clip, "a", "b c", "d e f", "g h i j")
    assert [len(clip.encoded[0][k][0]) for k in ("l", "g", "t5xxl", "llama")] == [1, 2, 3, 4]


def test_multi_clip_loaders_are_placeholders_naming_the_family(tmp_path, monkeypatch):
    from opencomfy.compat import folder_paths

    folder = tmp_path / "text_encoders"
    folder.mkdir()
    for name in ("a.safetensors", "b.safetensors", "c.safetensors", "d.safetensors"):
        (folder / name).write_bytes(b"x")
    monkeypatch.setattr(folder_paths, "get_full_path_or_raise", lambda kind, name: str(folder / name))
    with pytest.raises(NotImplementedError, match="SD3 .*not supported yet"):
        sd3.TripleCLIPLoader().execute(clip_name1="a.safetensors", clip_name2="b.safetensors",
                                       clip_name3="c.safetensors")
    with pytest.raises(NotImplementedError, match="HiDream .*not supported yet"):
        sd3.QuadrupleCLIPLoader().execute(clip_name1="a.safetensors", clip_name2="b.safetensors",
                                          clip_name3="c.safetensors", clip_name4="d.safetensors")


def test_ip2p_encodes_the_cropped_image_for_both_conditionings():
    pos, neg = [[torch.zeros(1, 2, 4), {}]], [[torch.ones(1, 2, 4), {}]]
    pixels = torch.rand(1, 21, 34, 3)
    out_pos, out_neg, latent = sdc.InstructPixToPixConditioning().execute(pos, neg, FakeImageVAE(), pixels)
    concat = out_pos[0][1]["concat_latent_image"]
    assert concat.shape == (1, 4, 2, 4)                       # 21x34 cropped to 16x32
    assert out_neg[0][1]["concat_latent_image"] is concat
    assert latent["samples"].shape == concat.shape and not latent["samples"].any()
    expected = pixels[:, 2:18, 1:33].mean(dim=(1, 2))        # the crop is centred
    assert torch.allclose(concat[:, :3].mean(dim=(2, 3)), expected, atol=1e-5)


class _Vision:
    def encode_image(self, image):
        out = type("Out", (), {})()
        out.image_embeds = torch.full((image.shape[0], 6), 0.5)
        return out


def test_zero123_camera_embedding_values():
    camera = sdc.camera_embedding(30.0, 90.0)
    assert camera.shape == (1, 1, 4)
    assert torch.allclose(camera[0, 0], torch.tensor([math.radians(-30), 1.0, 0.0, math.pi / 2]),
                          atol=1e-6)


def test_zero123_conditioning_and_batched_cameras():
    image = torch.rand(1, 16, 16, 3)
    pos, neg, latent = sdc.StableZero123_Conditioning().execute(_Vision(), image, FakeImageVAE(),
                                                                32, 24, 2, 10.0, 20.0)
    assert pos[0][0].shape == (1, 1, 10) and not neg[0][0].any()
    assert pos[0][1]["concat_latent_image"].shape == (1, 4, 3, 4)
    assert latent["samples"].shape == (2, 4, 3, 4)
    pos, _, latent = sdc.StableZero123_Conditioning_Batched().execute(
        _Vision(), image, FakeImageVAE(), 16, 16, 3, 0.0, 0.0, 10.0, 90.0)
    assert pos[0][0].shape == (3, 1, 10) and latent["batch_index"] == [0, 0, 0]
    assert torch.allclose(pos[0][0][2, 0, 6:], sdc.camera_embedding(20.0, 180.0)[0, 0], atol=1e-6)


def test_sv3d_orbits_once():
    pos, _, latent = sdc.SV3D_Conditioning().execute(_Vision(), torch.rand(1, 16, 16, 3),
                                                     FakeImageVAE(), 16, 16, 5, 12.5)
    assert pos[0][1]["azimuth"] == [0, 90, 180, 270, 360] and pos[0][1]["elevation"] == [12.5] * 5
    assert latent["samples"].shape == (5, 4, 2, 2)


def test_sd4x_upscale_conditioning():
    images = torch.rand(2, 10, 12, 3)
    pos, neg, latent = sdc.SD_4XUpscale_Conditioning().execute(images, [[torch.zeros(1, 1, 4), {}]],
                                                               [[torch.zeros(1, 1, 4), {}]], 2.0, 0.25)
    low = pos[0][1]["concat_image"]
    assert low.shape == (2, 3, 5, 6) and low.min() >= -1.0 and low.max() <= 1.0
    assert pos[0][1]["noise_augmentation"] == 0.25 and neg[0][1]["concat_image"] is low
    assert latent["samples"].shape == (2, 4, 5, 6)
    with pytest.raises(ValueError, match="too small"):
        sdc.SD_4XUpscale_Conditioning().execute(images, [], [], 0.1, 0.0)


def test_lotus_conditioning_is_a_placeholder():
    with pytest.raises(NotImplementedError, match="null-prompt embedding"):
        sdc.LotusConditioning().execute()
