"""Tiny media for the video and audio node tests, written with PyAV directly (not through the
code under test), so a round trip through our nodes is checked against an independent file."""

from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch


def frames(n: int = 16, height: int = 64, width: int = 64) -> torch.Tensor:
    """IMAGE ``[n, H, W, 3]``: smooth gradients (lossy codecs keep them) and a per-frame blue
    level, so every frame is different and its index readable."""
    y = torch.linspace(0, 1, height)[:, None].expand(height, width)
    x = torch.linspace(0, 1, width)[None, :].expand(height, width)
    return torch.stack([torch.stack([x, y, torch.full((height, width), i / max(n - 1, 1))], -1)
                        for i in range(n)])


def sine(seconds: float = 0.5, rate: int = 44100, channels: int = 2, freq: float = 440.0,
         amplitude: float = 0.5) -> dict:
    """AUDIO: a sine tone (the right channel at half the left's amplitude)."""
    t = torch.arange(int(round(seconds * rate)), dtype=torch.float64) / rate
    tone = (amplitude * torch.sin(2 * torch.pi * freq * t)).float()
    waveform = torch.stack([tone * (1.0 if c == 0 else 0.5) for c in range(channels)])
    return {"waveform": waveform.unsqueeze(0), "sample_rate": rate}


def _mux_audio(container, stream, audio: dict) -> None:
    data = audio["waveform"][0].numpy().astype(np.float32)
    layout = "mono" if data.shape[0] == 1 else "stereo"
    resampler = av.AudioResampler(format=stream.format.name, layout=layout, rate=stream.rate,
                                  frame_size=stream.codec_context.frame_size or None)
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data), format="fltp", layout=layout)
    frame.sample_rate, frame.pts = audio["sample_rate"], 0
    for out in resampler.resample(frame) + resampler.resample(None):
        container.mux(stream.encode(out))
    container.mux(stream.encode(None))


def write_video(target, images: torch.Tensor | None = None, *, fps: int = 8,
                audio: dict | None = None, container_format: str = "mp4") -> None:
    """An H.264/AAC MP4 (or VP9/Opus WebM) of ``images`` (none: a video stream with 0 frames)."""
    webm = container_format == "webm"
    with av.open(str(target) if isinstance(target, Path) else target, "w",
                 format=container_format) as container:
        stream = container.add_stream("libvpx-vp9" if webm else "libx264", rate=Fraction(fps))
        height, width = (images.shape[1], images.shape[2]) if images is not None else (64, 64)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        audio_stream = None
        if audio is not None:
            layout = "mono" if audio["waveform"].shape[1] == 1 else "stereo"
            audio_stream = container.add_stream("libopus" if webm else "aac",
                                                rate=48000 if webm else audio["sample_rate"],
                                                layout=layout)
            audio_stream.codec_context.open(strict=False)
        if images is None:
            container.start_encoding()  # write the header: a file with a stream and no frames
        for image in images if images is not None else []:
            pixels = (image.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
            container.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        container.mux(stream.encode(None))
        if audio_stream is not None:
            _mux_audio(container, audio_stream, audio)


def write_audio(target, audio: dict, *, container_format: str = "wav") -> None:
    """A WAV (16-bit PCM) or FLAC file of ``audio``."""
    codec = {"wav": "pcm_s16le", "flac": "flac"}[container_format]
    layout = "mono" if audio["waveform"].shape[1] == 1 else "stereo"
    with av.open(str(target) if isinstance(target, Path) else target, "w",
                 format=container_format) as container:
        stream = container.add_stream(codec, rate=audio["sample_rate"], layout=layout)
        stream.codec_context.open(strict=False)
        _mux_audio(container, stream, audio)


def video_bytes(images: torch.Tensor, **kwargs) -> bytes:
    buffer = io.BytesIO()
    write_video(buffer, images, **kwargs)
    return buffer.getvalue()


def audio_bytes(audio: dict, **kwargs) -> bytes:
    buffer = io.BytesIO()
    write_audio(buffer, audio, **kwargs)
    return buffer.getvalue()


def decode(path_or_bytes) -> tuple[torch.Tensor, float, dict]:
    """Every frame (float ``[N, H, W, 3]``), the frame rate and the metadata of a video file."""
    source = io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, bytes) else str(path_or_bytes)
    with av.open(source) as container:
        stream = container.streams.video[0]
        images = [torch.from_numpy(f.to_ndarray(format="rgb24")) for f in container.decode(stream)]
        rate = float(stream.average_rate)
        metadata = dict(container.metadata)
    return torch.stack(images).float() / 255.0, rate, metadata
