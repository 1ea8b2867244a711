"""V3 video values: encode components to MP4, read them back."""

from __future__ import annotations

import io
from fractions import Fraction

import torch

from opencomfy import compat


def _components(with_audio: bool):
    from comfy_api.latest import Types

    frames = torch.zeros(6, 16, 24, 3)
    frames[:, :, :12, 0] = 1.0  # left half red
    audio = None
    if with_audio:
        t = torch.arange(4000) / 8000  # half a second, like the frames
        audio = {"waveform": torch.sin(2 * torch.pi * 440 * t).repeat(2, 1).unsqueeze(0),
                 "sample_rate": 8000}
    return Types.VideoComponents(images=frames, audio=audio, frame_rate=Fraction(12))


def test_components_round_trip_through_an_mp4_file(tmp_path):
    compat.install()
    from comfy_api.latest import Input, InputImpl

    video = InputImpl.VideoFromComponents(_components(with_audio=True))
    assert isinstance(video, Input.Video)
    path = tmp_path / "v.mp4"
    video.save_to(str(path), metadata={"prompt": {"1": 2}})
    loaded = InputImpl.VideoFromFile(str(path))
    assert loaded.get_dimensions() == (24, 16)
    assert abs(loaded.get_duration() - 0.5) < 0.2
    components = loaded.get_components()
    assert components.images.shape == (6, 16, 24, 3)
    assert components.frame_rate == 12
    left, right = components.images[0, 8, 4], components.images[0, 8, 20]
    assert left[0] > 0.8 and left[1] < 0.2 and right.max() < 0.2  # lossy, but red stays red
    assert components.audio["sample_rate"] == 8000
    assert components.audio["waveform"].shape[1] == 2
    assert components.metadata["prompt"] == '{"1": 2}'


def test_file_video_copies_and_in_memory_sources(tmp_path):
    compat.install()
    from comfy_api.input_impl import VideoFromComponents, VideoFromFile

    buffer = io.BytesIO()
    VideoFromComponents(_components(with_audio=False)).save_to(buffer)
    in_memory = VideoFromFile(io.BytesIO(buffer.getvalue()))
    assert in_memory.get_dimensions() == (24, 16)
    copy = tmp_path / "copy.mp4"
    in_memory.save_to(str(copy))
    assert copy.read_bytes() == buffer.getvalue()
    assert VideoFromFile(str(copy)).get_components().images.shape[0] == 6
