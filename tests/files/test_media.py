"""Video facts read from real files written by PyAV."""

from __future__ import annotations

import pytest

from opencomfy.files.media import MediaError, VideoInfo, loaded_video, probe_video
from tests.files.factories import write_video


def test_probe_mp4(tmp_path):
    info = probe_video(write_video(tmp_path / "v.mp4", frames=12, fps=8, size=(64, 48)))
    assert (info.frames, info.fps, info.width, info.height) == (12, 8.0, 64, 48)
    assert info.duration == pytest.approx(1.5, abs=0.13)


def test_probe_webm_counts_packets(tmp_path):
    # Matroska/WebM records no frame count: it must be counted, not guessed.
    info = probe_video(write_video(tmp_path / "v.webm", frames=10, fps=5, size=(32, 32),
                                   codec="libvpx"))
    assert (info.frames, info.fps, info.width, info.height) == (10, 5.0, 32, 32)
    assert info.duration == pytest.approx(2.0, abs=0.21)


def test_not_a_video(tmp_path):
    p = tmp_path / "x.mp4"
    p.write_bytes(b"garbage" * 100)
    with pytest.raises(MediaError):
        probe_video(p)


def test_loaded_options():
    src = VideoInfo(frames=100, fps=25.0, width=64, height=48, duration=4.0)
    assert loaded_video(src) == src
    capped = loaded_video(src, skip_first_frames=10, select_every_nth=3, frame_load_cap=20)
    assert (capped.frames, capped.fps) == (20, pytest.approx(25 / 3))
    assert capped.duration == pytest.approx(20 / (25 / 3), abs=1e-5)
    rate = loaded_video(src, force_rate=10)
    assert (rate.frames, rate.fps, rate.duration) == (40, 10.0, 4.0)
