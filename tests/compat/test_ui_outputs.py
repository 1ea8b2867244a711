"""V3 ``ui`` helpers: what they save and the ``ui`` dict they give."""

from __future__ import annotations

import io
import json

import av
import pytest
import torch
from PIL import Image

from opencomfy.compat.comfy_api.latest._io_node import HiddenHolder


@pytest.fixture(autouse=True)
def folders(tmp_path):
    from opencomfy import compat
    from opencomfy.compat import folder_paths

    from tests.nodes.conftest import folder_paths_state, restore_folder_paths

    compat.install()
    state = folder_paths_state()
    folder_paths.configure(base_directory=tmp_path)
    try:
        yield tmp_path
    finally:
        restore_folder_paths(state)  # the next test module finds folder_paths as it was


class _Node:
    hidden = HiddenHolder(prompt={"1": {"class_type": "X"}}, extra_pnginfo={"workflow": {"w": 1}})


def test_preview_text_and_saved_images():
    from comfy_api.latest import ui

    assert ui.PreviewText("hi").as_dict() == {"text": ("hi",)}
    saved = ui.SavedImages([ui.SavedResult("a.png", "", "output")], is_animated=True)
    assert saved.as_dict() == {"images": [{"filename": "a.png", "subfolder": "", "type": "output"}],
                               "animated": (True,)}


def test_preview_mask_saves_grey_pngs_with_metadata(folders):
    from comfy_api.latest import ui

    mask = torch.zeros(2, 3, 4)
    mask[1] = 1.0
    out = ui.PreviewMask(mask, cls=_Node).as_dict()
    assert out["animated"] == (False,) and len(out["images"]) == 2
    first, second = out["images"]
    assert first["type"] == "temp"
    with Image.open(folders / "temp" / second["subfolder"] / second["filename"]) as img:
        assert img.size == (4, 3) and img.getpixel((0, 0)) == (255, 255, 255)
        assert json.loads(img.info["prompt"]) == {"1": {"class_type": "X"}}
        assert json.loads(img.info["workflow"]) == {"w": 1}


def test_save_images_ui_goes_to_output_with_counters(folders):
    from comfy_api.latest import ui

    images = torch.full((2, 2, 2, 3), 0.5)
    result = ui.ImageSaveHelper.get_save_images_ui(images, "v3/pic", cls=None).as_dict()
    names = [r["filename"] for r in result["images"]]
    assert names == ["pic_00001_.png", "pic_00002_.png"]
    assert all(r["subfolder"] == "v3" and r["type"] == "output" for r in result["images"])
    with Image.open(folders / "output" / "v3" / "pic_00001_.png") as img:
        assert img.getpixel((0, 0)) == (127, 127, 127) and "prompt" not in img.info


def test_preview_audio_writes_flac_with_the_prompt(folders):
    from comfy_api.latest import ui

    t = torch.arange(4410) / 44100
    audio = {"waveform": torch.sin(2 * torch.pi * 440 * t).repeat(1, 2, 1) * 0.5, "sample_rate": 44100}
    out = ui.PreviewAudio(audio, cls=_Node).as_dict()
    (entry,) = out["audio"]
    assert entry["type"] == "temp" and entry["filename"].endswith(".flac")
    data = (folders / "temp" / entry["subfolder"] / entry["filename"]).read_bytes()
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        assert stream.rate == 44100 and stream.channels == 2
        assert json.loads(container.metadata["prompt"]) == {"1": {"class_type": "X"}}
        samples = sum(frame.samples for frame in container.decode(audio=0))
    assert samples == 4410  # FLAC is lossless: every sample is there


def test_save_audio_in_other_formats(folders):
    from comfy_api.latest import io as comfy_io
    from comfy_api.latest import ui

    audio = {"waveform": torch.zeros(1, 1, 22050), "sample_rate": 22050}
    for fmt in ("mp3", "opus"):
        results = ui.AudioSaveHelper.save_audio(audio, "clip", comfy_io.FolderType.output, None,
                                                format=fmt)
        assert results[0]["filename"].endswith("." + fmt)
        assert (folders / "output" / results[0]["filename"]).stat().st_size > 0
