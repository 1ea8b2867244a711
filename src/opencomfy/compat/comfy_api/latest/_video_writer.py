"""Encoding a video one frame at a time (PyAV): what SaveVideo, CreateVideo's values and
SaveWEBM write with.

A :class:`VideoWriter` holds the open container and at most one frame in flight, so saving a
long IMAGE batch or transcoding a long file never needs a second decoded copy of the video.
An audio track (:class:`~._audio.AudioTrack`) can be fed alongside, interleaved by time.
"""

from __future__ import annotations

import json
from fractions import Fraction
from typing import cast

import av
import numpy as np
import torch
from av.video.stream import VideoStream

from opencomfy.compat.comfy_api.latest._audio import AudioTrack

# Chroma-subsampled pixel formats need even frame sizes.
_EVEN_SIZED = ("yuv420", "yuva420", "nv12")
# How often a long encode or decode looks whether its prompt was interrupted.
INTERRUPT_CHECK_FRAMES = 16


def check_interrupt(frame_index: int) -> None:
    """Raise the engine's Interrupted every INTERRUPT_CHECK_FRAMES frames if the prompt was
    stopped (a no-op outside a run), so a long video does not hold the worker."""
    if frame_index % INTERRUPT_CHECK_FRAMES == 0:
        from opencomfy.compat.comfy.model_management import throw_exception_if_processing_interrupted

        throw_exception_if_processing_interrupted()


def frame_rate_fraction(rate) -> Fraction:
    """A frame rate as a small fraction (23.976 -> 2997/125); containers want modest time bases."""
    value = Fraction(rate).limit_denominator(100000)
    if value <= 0:
        raise ValueError(f"frame rate must be positive, got {rate}")
    return value


def image_to_array(image: torch.Tensor, *, alpha: bool = False) -> np.ndarray:
    """One IMAGE frame ``[H, W, C]`` in 0..1 -> uint8 RGB (or RGBA when ``alpha``) pixels."""
    channels = 4 if alpha and image.shape[-1] >= 4 else 3
    # One float temporary (clamp), scaled in place, then the bytes: a frame never costs more.
    pixels = image[..., :channels].detach().float().clamp(0, 1).mul_(255).round_().to(torch.uint8)
    if pixels.shape[-1] == 1:  # grey -> RGB
        pixels = pixels[..., :1].expand(*pixels.shape[:-1], 3)
    return np.ascontiguousarray(pixels.cpu().numpy())


class VideoWriter:
    """An open video file being encoded; use as a context manager.

    ``target`` is a path or a writable, seekable binary file object. ``width``/``height`` are
    the source size; they are rounded down to even numbers where the pixel format needs it
    (the last row/column is dropped, not scaled).
    """

    def __init__(self, target, *, frame_rate, width: int, height: int,
                 container_format: str = "mp4", codec: str = "libx264", pix_fmt: str = "yuv420p",
                 bit_rate: int | None = None, options: dict | None = None,
                 metadata: dict | None = None, audio_rate: int | None = None,
                 audio_channels: int = 2, audio_codec: str = "aac") -> None:
        if pix_fmt.startswith(_EVEN_SIZED):
            width, height = width // 2 * 2, height // 2 * 2
        if width <= 0 or height <= 0:
            raise ValueError(f"a {width}x{height} frame cannot be encoded as {pix_fmt}")
        self.width, self.height, self.pix_fmt = width, height, pix_fmt
        self.frame_rate = frame_rate_fraction(frame_rate)
        container_options = {}
        if container_format in ("mp4", "mov"):
            # Keep arbitrary keys (the prompt, the workflow) in the file, as ComfyUI does.
            container_options["movflags"] = "use_metadata_tags"
        self._container = av.open(target, mode="w", format=container_format,
                                  options=container_options)
        try:
            for key, value in (metadata or {}).items():
                self._container.metadata[key] = value if isinstance(value, str) else json.dumps(value)
            self._video = cast(VideoStream, self._container.add_stream(codec, rate=self.frame_rate))
            self._video.width, self._video.height, self._video.pix_fmt = width, height, pix_fmt
            if bit_rate is not None:
                self._video.bit_rate = bit_rate
            if options:
                self._video.options = {k: str(v) for k, v in options.items()}
            self._audio = None
            if audio_rate:
                self._audio = AudioTrack(self._container, audio_codec, rate=int(audio_rate),
                                         channels=audio_channels)
        except BaseException:
            self._container.close()
            raise
        self.frames = 0
        self._closed = False

    @property
    def has_audio(self) -> bool:
        return self._audio is not None

    def write_image(self, image: torch.Tensor) -> None:
        """Encode one IMAGE frame ``[H, W, C]`` (float 0..1)."""
        alpha = self.pix_fmt.startswith("yuva")
        pixels = image_to_array(image[: self.height, : self.width], alpha=alpha)
        frame = av.VideoFrame.from_ndarray(pixels, format="rgba" if pixels.shape[-1] == 4 else "rgb24")
        self.write_frame(frame)

    def write_frame(self, frame: av.VideoFrame) -> None:
        """Encode one decoded frame (converted to the stream's size and pixel format)."""
        if frame.width != self.width or frame.height != self.height or frame.format.name != self.pix_fmt:
            frame = frame.reformat(width=self.width, height=self.height, format=self.pix_fmt)
        check_interrupt(self.frames)
        frame.pts = self.frames
        frame.time_base = 1 / self.frame_rate
        self.frames += 1
        self._container.mux(self._video.encode(frame))

    def write_audio(self, samples: np.ndarray) -> None:
        """Encode ``[channels, n]`` float samples into the audio track."""
        if self._audio is None:
            raise ValueError("this video was opened without an audio track")
        self._audio.write(samples)

    def close(self) -> None:
        """Flush the encoders and finish the file."""
        if self._closed:
            return
        self._closed = True
        try:
            self._container.mux(self._video.encode(None))
            if self._audio is not None:
                self._audio.close()
        finally:
            self._container.close()

    def abort(self) -> None:
        """Close without flushing (the file is incomplete; the caller removes it)."""
        if not self._closed:
            self._closed = True
            self._container.close()

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

