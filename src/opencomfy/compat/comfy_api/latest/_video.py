"""V3 video values: ``Input.Video`` (``VideoInput``), ``InputImpl.VideoFromFile`` /
``VideoFromComponents``, ``Types.VideoComponents`` / ``VideoContainer`` / ``VideoCodec``.

Frames are IMAGE tensors (``[N, H, W, 3]`` float in 0..1), audio is ComfyUI's AUDIO dict
(``{"waveform": [1, channels, samples], "sample_rate"}``); files are read and written
with PyAV (H.264 + AAC in MP4).
"""

from __future__ import annotations

import io
import json
import shutil
from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import Enum
from fractions import Fraction


import av
import numpy as np
import torch


class VideoContainer(str, Enum):
    AUTO = "auto"
    MP4 = "mp4"

    @staticmethod
    def as_input(value) -> list[str]:
        return [member.value for member in VideoContainer]

    @staticmethod
    def get_extension(value) -> str:
        value = VideoContainer(value)
        return "mp4" if value in (VideoContainer.AUTO, VideoContainer.MP4) else value.value


class VideoCodec(str, Enum):
    AUTO = "auto"
    H264 = "h264"

    @staticmethod
    def as_input(value) -> list[str]:
        return [member.value for member in VideoCodec]


@dataclass
class VideoComponents:
    """A video as tensors: frames, optional audio, frame rate and metadata."""

    images: torch.Tensor
    audio: dict | None = None
    frame_rate: Fraction = Fraction(24)
    metadata: dict | None = None


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

    def get_duration(self) -> float:
        components = self.get_components()
        return components.images.shape[0] / float(components.frame_rate)

    def get_container_format(self) -> str:
        return "mp4"


class VideoFromFile(VideoInput):
    """A video file on disk (a path) or in memory (a BytesIO)."""

    def __init__(self, file: str | io.BytesIO) -> None:
        self._file = file

    def _open(self):
        if isinstance(self._file, io.BytesIO):
            self._file.seek(0)
        return av.open(self._file, mode="r")

    def get_stream_source(self) -> str | io.BytesIO:
        if isinstance(self._file, io.BytesIO):
            self._file.seek(0)
        return self._file

    def get_dimensions(self) -> tuple[int, int]:
        with self._open() as container:
            stream = container.streams.video[0]
            return stream.width, stream.height

    def get_duration(self) -> float:
        with self._open() as container:
            if container.duration is not None:
                return float(container.duration / av.time_base)
            stream = container.streams.video[0]
            if stream.duration is not None and stream.time_base is not None:
                return float(stream.duration * stream.time_base)
        return super().get_duration()

    def get_container_format(self) -> str:
        with self._open() as container:
            return container.format.name

    def get_components(self) -> VideoComponents:
        with self._open() as container:
            video = container.streams.video[0]
            frame_rate = Fraction(video.average_rate or 24)
            frames = [torch.from_numpy(f.to_ndarray(format="rgb24")) for f in container.decode(video=0)]
            if not frames:
                raise ValueError("the video has no frames")
            images = torch.stack(frames).float() / 255.0
            audio = _decode_audio(self._open) if container.streams.audio else None
            metadata = dict(container.metadata) or None
        return VideoComponents(images=images, audio=audio, frame_rate=frame_rate, metadata=metadata)

    def save_to(self, path, format: VideoContainer = VideoContainer.AUTO,
                codec: VideoCodec = VideoCodec.AUTO, metadata: dict | None = None) -> None:
        copyable = (VideoContainer(format) in (VideoContainer.AUTO, VideoContainer.MP4)
                    and VideoCodec(codec) == VideoCodec.AUTO and not metadata
                    and self.get_container_format().startswith("mov"))
        if copyable:
            source = self.get_stream_source()
            if isinstance(source, io.BytesIO):
                data = source.getvalue()
                if isinstance(path, io.BytesIO):
                    path.write(data)
                else:
                    with open(path, "wb") as f:
                        f.write(data)
            elif isinstance(path, io.BytesIO):
                with open(source, "rb") as f:
                    path.write(f.read())
            else:
                shutil.copyfile(source, path)
            return
        VideoFromComponents(self.get_components()).save_to(path, format, codec, metadata)


def _decode_audio(open_container) -> dict | None:
    with open_container() as container:
        stream = container.streams.audio[0]
        chunks = []
        for frame in container.decode(audio=0):
            array = frame.to_ndarray()
            if array.ndim == 1 or not frame.format.is_planar:
                array = array.reshape(-1, len(frame.layout.channels)).T
            chunks.append(array.astype(np.float32))
        if not chunks:
            return None
        waveform = torch.from_numpy(np.concatenate(chunks, axis=1)).unsqueeze(0)
        return {"waveform": waveform, "sample_rate": stream.rate}


class VideoFromComponents(VideoInput):
    """A video made from tensors; encoded (H.264, AAC) when saved."""

    def __init__(self, components: VideoComponents) -> None:
        self._components = components

    def get_components(self) -> VideoComponents:
        return self._components

    def save_to(self, path, format: VideoContainer = VideoContainer.AUTO,
                codec: VideoCodec = VideoCodec.AUTO, metadata: dict | None = None) -> None:
        if VideoContainer(format) not in (VideoContainer.AUTO, VideoContainer.MP4):
            raise ValueError("only MP4 is supported")
        if VideoCodec(codec) not in (VideoCodec.AUTO, VideoCodec.H264):
            raise ValueError("only H.264 is supported")
        components = self._components
        images = components.images
        # yuv420p needs even sizes: drop a last odd row/column.
        height, width = images.shape[1] // 2 * 2, images.shape[2] // 2 * 2
        pixels = (images[:, :height, :width, :3].clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
        # use_metadata_tags: keep arbitrary keys (the prompt, the workflow) in the MP4.
        with av.open(path, mode="w", format="mp4",
                     options={"movflags": "use_metadata_tags"}) as container:
            for key, value in {**(components.metadata or {}), **(metadata or {})}.items():
                container.metadata[key] = value if isinstance(value, str) else json.dumps(value)
            video = container.add_stream("libx264", rate=Fraction(components.frame_rate))
            video.width, video.height, video.pix_fmt = width, height, "yuv420p"
            audio_stream = None
            if components.audio is not None:
                audio_stream = container.add_stream("aac", rate=int(components.audio["sample_rate"]))
            for array in pixels:
                frame = av.VideoFrame.from_ndarray(array, format="rgb24")
                container.mux(video.encode(frame))
            container.mux(video.encode(None))
            if audio_stream is not None:
                _encode_audio(container, audio_stream, components.audio)


def _encode_audio(container, stream, audio: dict) -> None:
    waveform = audio["waveform"][0].float().cpu().numpy()  # [channels, samples]
    channels = waveform.shape[0]
    layout = "mono" if channels == 1 else "stereo"
    waveform = waveform[:2]
    frame_size = stream.codec_context.frame_size or 1024
    for start in range(0, waveform.shape[1], frame_size):
        chunk = np.ascontiguousarray(waveform[:, start:start + frame_size])
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=layout)
        frame.sample_rate = int(audio["sample_rate"])
        frame.pts = start
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))


__all__ = ["VideoContainer", "VideoCodec", "VideoComponents", "VideoInput", "VideoFromFile",
           "VideoFromComponents"]


