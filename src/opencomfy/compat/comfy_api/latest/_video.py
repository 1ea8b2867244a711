"""V3 video values: ``Input.Video`` (``VideoInput``), ``InputImpl.VideoFromFile`` /
``VideoFromComponents``, ``Types.VideoComponents`` / ``VideoContainer`` / ``VideoCodec``.

Frames are IMAGE tensors (``[N, H, W, 3]`` float in 0..1), audio is ComfyUI's AUDIO dict
(``{"waveform": [1, channels, samples], "sample_rate"}``); files are read and written with
PyAV (H.264 + AAC in MP4).

Memory: a ``VideoFromFile`` decodes nothing until its components are asked for, and saving
one streams packets (a copy or a remux) or frames (a transcode) from file to file. Saving a
``VideoFromComponents`` encodes its tensor frame by frame. Only ``get_components`` holds a
whole decoded video, once, in a tensor allocated up front.
"""

from __future__ import annotations

import io
import json
import os
import shutil
from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import Enum
from fractions import Fraction

import av
import numpy as np
import torch
from av.error import FFmpegError

from opencomfy.compat.comfy_api.latest._audio import decode_audio_stream, frame_samples
from opencomfy.compat.comfy_api.latest._video_writer import (
    VideoWriter, check_interrupt, frame_rate_fraction,
)


class VideoDecodeError(ValueError):
    """The file is not a video FFmpeg can read, is truncated, or has no frames."""


class VideoContainer(str, Enum):
    AUTO = "auto"
    MP4 = "mp4"

    @staticmethod
    def as_input() -> list[str]:
        return [member.value for member in VideoContainer]

    @staticmethod
    def get_extension(value) -> str:
        value = VideoContainer(value)
        return "mp4" if value in (VideoContainer.AUTO, VideoContainer.MP4) else value.value


class VideoCodec(str, Enum):
    AUTO = "auto"
    H264 = "h264"

    @staticmethod
    def as_input() -> list[str]:
        return [member.value for member in VideoCodec]


@dataclass
class VideoComponents:
    """A video as tensors: frames, optional audio, frame rate and metadata."""

    images: torch.Tensor
    audio: dict | None = None
    frame_rate: Fraction = Fraction(24)
    metadata: dict | None = None


def trim_window(total: float, frame_rate: float, start_time: float, duration: float,
                strict_duration: bool) -> tuple[float, float] | None:
    """``(start, duration)`` of a slice inside a video of ``total`` seconds, or None if impossible.

    A negative start counts from the end; duration 0 means "to the end". Half a frame of
    slack absorbs rounding of container durations.
    """
    slack = 0.5 / float(frame_rate) if frame_rate else 0.0
    start = total + start_time if start_time < 0 else start_time
    start = max(0.0, start)
    if start >= total - slack:
        return None
    rest = total - start
    if duration > 0 and duration > rest + slack:
        if strict_duration:
            return None
        duration = 0.0
    return start, (duration if duration > 0 else 0.0)


class VideoInput(ABC):
    """What a VIDEO input holds."""

    @abstractmethod
    def get_components(self) -> VideoComponents:
        ...

    @abstractmethod
    def save_to(self, path, format: VideoContainer = VideoContainer.AUTO,
                codec: VideoCodec = VideoCodec.AUTO, metadata: dict | None = None) -> None:
        ...

    def get_stream_source(self) -> str | io.BytesIO:
        buffer = io.BytesIO()
        self.save_to(buffer)
        buffer.seek(0)
        return buffer

    def get_dimensions(self) -> tuple[int, int]:
        images = self.get_components().images
        return images.shape[2], images.shape[1]

    def get_frame_rate(self) -> Fraction:
        return Fraction(self.get_components().frame_rate)

    def get_frame_count(self) -> int:
        return int(self.get_components().images.shape[0])

    def get_duration(self) -> float:
        return self.get_frame_count() / float(self.get_frame_rate())

    def get_container_format(self) -> str:
        return "mp4"

    def as_trimmed(self, start_time: float = 0.0, duration: float = 0.0,
                   strict_duration: bool = False) -> VideoInput | None:
        """A slice of this video (None when the slice is not possible)."""
        return VideoFromComponents(self.get_components()).as_trimmed(
            start_time, duration, strict_duration)


def _check_target(format, codec) -> None:
    if VideoContainer(format) not in (VideoContainer.AUTO, VideoContainer.MP4):
        raise ValueError("only MP4 is supported")
    if VideoCodec(codec) not in (VideoCodec.AUTO, VideoCodec.H264):
        raise ValueError("only H.264 is supported")


class VideoFromComponents(VideoInput):
    """A video made from tensors; encoded (H.264, AAC) frame by frame when saved."""

    def __init__(self, components: VideoComponents) -> None:
        self._components = components

    def get_components(self) -> VideoComponents:
        return self._components

    def get_dimensions(self) -> tuple[int, int]:
        images = self._components.images
        return images.shape[2], images.shape[1]

    def as_trimmed(self, start_time: float = 0.0, duration: float = 0.0,
                   strict_duration: bool = False) -> VideoInput | None:
        c = self._components
        rate = float(c.frame_rate)
        window = trim_window(c.images.shape[0] / rate, rate, start_time, duration, strict_duration)
        if window is None:
            return None
        start, length = window
        first = int(round(start * rate))
        last = first + max(1, int(round(length * rate))) if length else c.images.shape[0]
        audio = None
        if c.audio is not None:
            sr = int(c.audio["sample_rate"])
            lo = int(round(start * sr))
            hi = int(round((start + length) * sr)) if length else c.audio["waveform"].shape[-1]
            audio = {**c.audio, "waveform": c.audio["waveform"][..., lo:hi]}
        # Slices are views: trimming copies no frames.
        return VideoFromComponents(VideoComponents(images=c.images[first:last], audio=audio,
                                                   frame_rate=c.frame_rate, metadata=c.metadata))

    def save_to(self, path, format: VideoContainer = VideoContainer.AUTO,
                codec: VideoCodec = VideoCodec.AUTO, metadata: dict | None = None) -> None:
        _check_target(format, codec)
        c = self._components
        images = c.images
        if images.shape[0] == 0:
            raise ValueError("the video has no frames")
        rate = frame_rate_fraction(c.frame_rate)
        audio = c.audio if c.audio is not None and c.audio["waveform"].shape[-1] > 0 else None
        waveform = audio["waveform"][0] if audio is not None else None
        sample_rate = int(audio["sample_rate"]) if audio is not None else 0
        with VideoWriter(path, frame_rate=rate, width=images.shape[2], height=images.shape[1],
                         metadata={**(c.metadata or {}), **(metadata or {})},
                         audio_rate=sample_rate or None,
                         audio_channels=waveform.shape[0] if waveform is not None else 2) as writer:
            written = 0
            for index in range(images.shape[0]):
                writer.write_image(images[index])
                if waveform is not None:
                    # Interleave: the audio up to the end of this frame (longer audio is cut).
                    upto = min(waveform.shape[-1], int(round((index + 1) * sample_rate / rate)))
                    if upto > written:
                        writer.write_audio(waveform[:, written:upto].float().cpu().numpy())
                        written = upto


# Codecs an MP4 file can carry as they are (stream copy, no decoding).
_MP4_VIDEO_CODECS = {"h264", "hevc", "av1", "mpeg4", "vp9"}
_MP4_AUDIO_CODECS = {"aac", "mp3", "alac", "opus", "flac", "ac3"}


class VideoFromFile(VideoInput):
    """A video file on disk (a path) or in memory (a BytesIO), decoded only when needed.

    ``start_time``/``duration`` (seconds; duration 0 = to the end) restrict it to a window,
    as ``as_trimmed`` returns.
    """

    def __init__(self, file: str | io.BytesIO, *, start_time: float = 0.0,
                 duration: float = 0.0) -> None:
        self._file = file
        self._start = float(start_time)
        self._duration = float(duration)

    # --- opening --------------------------------------------------------------------------

    @property
    def _name(self) -> str:
        return os.path.basename(self._file) if isinstance(self._file, str) else "the video"

    def _open(self):
        if isinstance(self._file, io.BytesIO):
            self._file.seek(0)
        try:
            container = av.open(self._file, mode="r")
        except (FFmpegError, OSError, ValueError) as exc:
            raise VideoDecodeError(f"{self._name} is not a readable video: {exc}") from None
        if not container.streams.video:
            container.close()
            raise VideoDecodeError(f"{self._name} has no video stream")
        return container

    def check(self) -> None:
        """Raise :class:`VideoDecodeError` unless the file opens as a video with at least one
        frame (reads the headers and the first video packet, decodes nothing)."""
        try:
            with self._open() as container:
                stream = container.streams.video[0]
                if stream.frames:
                    return
                for packet in container.demux(stream):
                    if packet.size:
                        return
        except (FFmpegError, OSError) as exc:
            raise VideoDecodeError(f"{self._name} is not a readable video: {exc}") from None
        raise VideoDecodeError(f"{self._name} has no video frames")

    @property
    def _windowed(self) -> bool:
        return self._start > 0 or self._duration > 0

    @staticmethod
    def _origin(stream) -> float:
        if stream.start_time is None or stream.time_base is None:
            return 0.0
        return float(stream.start_time * stream.time_base)

    def _full_duration(self, container) -> float:
        stream = container.streams.video[0]
        if stream.duration is not None and stream.time_base is not None:
            return float(stream.duration * stream.time_base)
        if container.duration is not None:
            return float(container.duration / av.time_base)
        rate = stream.average_rate or stream.guessed_rate or 24
        return self._count_packets(container, 0.0, None) / float(rate)

    # --- facts ----------------------------------------------------------------------------

    def get_stream_source(self) -> str | io.BytesIO:
        if self._windowed:
            return super().get_stream_source()
        if isinstance(self._file, io.BytesIO):
            self._file.seek(0)
        return self._file

    def get_dimensions(self) -> tuple[int, int]:
        with self._open() as container:
            stream = container.streams.video[0]
            return stream.codec_context.width, stream.codec_context.height

    def get_frame_rate(self) -> Fraction:
        with self._open() as container:
            stream = container.streams.video[0]
            return Fraction(stream.average_rate or stream.guessed_rate or stream.base_rate or 24)

    def get_duration(self) -> float:
        with self._open() as container:
            total = self._full_duration(container)
        rest = max(0.0, total - self._start)
        return min(rest, self._duration) if self._duration > 0 else rest

    def get_frame_count(self) -> int:
        with self._open() as container:
            stream = container.streams.video[0]
            if not self._windowed and stream.frames:
                return int(stream.frames)
            end = self._start + self._duration if self._duration > 0 else None
            return self._count_packets(container, self._start, end)

    def get_container_format(self) -> str:
        with self._open() as container:
            return container.format.name

    def _count_packets(self, container, start: float, end: float | None) -> int:
        """Video packets whose time falls in [start, end): demuxing only, no decoding."""
        stream = container.streams.video[0]
        origin = self._origin(stream)
        count = 0
        for packet in container.demux(stream):
            if not packet.size:
                continue
            if packet.pts is not None and packet.time_base is not None:
                t = float(packet.pts * packet.time_base) - origin
                if t < start - 1e-6 or (end is not None and t >= end - 1e-6):
                    continue
            count += 1
        return count

    # --- decoding -------------------------------------------------------------------------

    def _frames(self, container):
        """The decoded video frames of the window, in order."""
        stream = container.streams.video[0]
        stream.codec_context.thread_type = "AUTO"
        origin = self._origin(stream)
        end = self._start + self._duration if self._duration > 0 else None
        if self._start > 0 and stream.time_base is not None:
            container.seek(int((origin + self._start) / stream.time_base), stream=stream, backward=True)
        for frame in container.decode(stream):
            t = frame.time - origin if frame.time is not None else None
            if t is not None and t < self._start - 1e-6:
                continue
            if t is not None and end is not None and t >= end - 1e-6:
                break
            yield frame

    def get_components(self) -> VideoComponents:
        expected = self.get_frame_count()
        try:
            with self._open() as container:
                stream = container.streams.video[0]
                frame_rate = Fraction(stream.average_rate or stream.guessed_rate or 24)
                width, height = stream.codec_context.width, stream.codec_context.height
                # One float tensor of the announced size, filled in place: the decoded video
                # is never held twice (no list of frames stacked at the end).
                images = torch.empty((max(expected, 1), height, width, 3), dtype=torch.float32)
                count = 0
                for frame in self._frames(container):
                    check_interrupt(count)
                    pixels = torch.from_numpy(frame.to_ndarray(format="rgb24"))
                    if pixels.shape[:2] != (height, width):
                        pixels = torch.from_numpy(frame.reformat(width=width, height=height,
                                                                 format="rgb24").to_ndarray())
                    if count == images.shape[0]:  # more frames than the container announced
                        images = torch.cat([images, torch.empty_like(images[: max(1, count // 4)])])
                    images[count].copy_(pixels).div_(255.0)
                    count += 1
                metadata = dict(container.metadata) or None
            with self._open() as container:
                audio = decode_audio_stream(container, start=self._start, duration=self._duration)
        except VideoDecodeError:
            raise
        except (FFmpegError, OSError) as exc:
            raise VideoDecodeError(f"{self._name} could not be decoded: {exc}") from None
        if count == 0:
            raise VideoDecodeError(f"{self._name} has no video frames")
        return VideoComponents(images=images[:count], audio=audio, frame_rate=frame_rate,
                               metadata=metadata)

    def as_trimmed(self, start_time: float = 0.0, duration: float = 0.0,
                   strict_duration: bool = False) -> VideoInput | None:
        total = self.get_duration()
        window = trim_window(total, float(self.get_frame_rate()), start_time, duration,
                             strict_duration)
        if window is None:
            return None
        start, length = window
        if self._duration > 0 and length == 0:
            length = total - start
        return VideoFromFile(self._file, start_time=self._start + start, duration=length)

    # --- saving ---------------------------------------------------------------------------

    def save_to(self, path, format: VideoContainer = VideoContainer.AUTO,
                codec: VideoCodec = VideoCodec.AUTO, metadata: dict | None = None) -> None:
        _check_target(format, codec)
        with self._open() as container:
            video = container.streams.video[0]
            audio = container.streams.audio[0] if container.streams.audio else None
            video_codec = video.codec_context.name
            copyable = (not self._windowed
                        and video_codec in _MP4_VIDEO_CODECS
                        and (VideoCodec(codec) == VideoCodec.AUTO or video_codec == "h264")
                        and (audio is None or audio.codec_context.name in _MP4_AUDIO_CODECS))
            same_file = container.format.name.startswith("mov")
        try:
            if copyable and same_file and not metadata:
                self._copy_bytes(path)
            elif copyable:
                self._remux(path, metadata)
            else:
                self._transcode(path, metadata)
        except (FFmpegError, EOFError) as exc:
            raise VideoDecodeError(f"{self._name} could not be saved: {exc}") from None

    def _copy_bytes(self, path) -> None:
        source = self.get_stream_source()
        src = open(source, "rb") if isinstance(source, str) else source
        try:
            if isinstance(path, (str, os.PathLike)):
                with open(path, "wb") as out:
                    shutil.copyfileobj(src, out)
            else:
                shutil.copyfileobj(src, path)
        finally:
            if isinstance(source, str):
                src.close()

    def _remux(self, path, metadata: dict | None) -> None:
        """Copy the first video and audio streams' packets into MP4, with new metadata."""
        with self._open() as source, av.open(path, mode="w", format="mp4",
                                             options={"movflags": "use_metadata_tags"}) as out:
            for key, value in {**dict(source.metadata), **(metadata or {})}.items():
                out.metadata[key] = value if isinstance(value, str) else json.dumps(value)
            streams = [source.streams.video[0]] + list(source.streams.audio[:1])
            mapping = {s.index: out.add_stream_from_template(s) for s in streams}
            for packet in source.demux(streams):
                if packet.dts is None:  # the demuxer's end-of-stream marker
                    continue
                packet.stream = mapping[packet.stream.index]
                out.mux(packet)

    def _transcode(self, path, metadata: dict | None) -> None:
        """Decode and re-encode (H.264 + AAC) one frame / one audio chunk at a time."""
        with self._open() as source:
            video = source.streams.video[0]
            video.codec_context.thread_type = "AUTO"
            audio = source.streams.audio[0] if source.streams.audio else None
            rate = Fraction(video.average_rate or video.guessed_rate or 24)
            origin = self._origin(video)
            end = self._start + self._duration if self._duration > 0 else None
            if self._start > 0 and video.time_base is not None:
                source.seek(int((origin + self._start) / video.time_base), stream=video, backward=True)
            audio_rate = audio.codec_context.sample_rate if audio is not None else None
            audio_channels = audio.codec_context.channels if audio is not None else 2
            writer = VideoWriter(path, frame_rate=rate, width=video.codec_context.width,
                                 height=video.codec_context.height,
                                 metadata={**dict(source.metadata), **(metadata or {})},
                                 audio_rate=audio_rate, audio_channels=audio_channels)
            with writer:
                streams = [video] + ([audio] if audio is not None else [])
                for packet in source.demux(streams):
                    for frame in packet.decode():
                        if not isinstance(frame, (av.VideoFrame, av.AudioFrame)):
                            continue
                        t = frame.time - origin if frame.time is not None else None
                        inside = t is None or (t >= self._start - 1e-6 and (end is None or t < end - 1e-6))
                        if not inside:
                            continue
                        if isinstance(frame, av.VideoFrame):
                            writer.write_frame(frame)
                        elif audio_rate:
                            writer.write_audio(_cut_audio(frame, t, self._start, end, audio_rate))
                if writer.frames == 0:
                    raise VideoDecodeError(f"{self._name} has no video frames")


def _cut_audio(frame: av.AudioFrame, t: float | None, start: float, end: float | None,
               rate: int) -> np.ndarray:
    """A decoded audio frame's samples, cut to the window's end."""
    samples = frame_samples(frame)
    if t is not None and end is not None:
        samples = samples[:, : max(0, int(round((end - t) * rate)))]
    return samples


__all__ = ["VideoContainer", "VideoCodec", "VideoComponents", "VideoInput", "VideoFromFile",
           "VideoFromComponents", "VideoDecodeError"]
