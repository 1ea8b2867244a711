"""Video facts read from the file itself with PyAV (FFmpeg): frames, rate, size, duration."""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path


class MediaError(ValueError):
    """The file is not a video FFmpeg can read."""


@dataclass(frozen=True)
class VideoInfo:
    frames: int
    fps: float
    width: int
    height: int
    duration: float

    def as_dict(self) -> dict:
        return {"size": [self.width, self.height], "fps": self.fps, "frames": self.frames,
                "duration": self.duration}


def probe_video(path: Path) -> VideoInfo:
    """Read a video's real frame count, frame rate, size and duration.

    The frame count comes from the container when it records one, else from counting the
    video packets (demuxing only, no decoding), so formats like WebM/MKV are exact too.
    """
    import av  # imported here: only this route needs FFmpeg
    from av.error import FFmpegError

    try:
        with av.open(str(path), mode="r") as container:
            if not container.streams.video:
                raise MediaError("no video stream")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            fps = float(rate) if rate else 0.0
            width, height = stream.codec_context.width, stream.codec_context.height
            duration = None
            if stream.duration is not None and stream.time_base is not None:
                duration = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                duration = container.duration / av.time_base
            frames = stream.frames
            if not frames:
                frames = sum(1 for packet in container.demux(stream) if packet.size)
    except MediaError:
        raise
    except (FFmpegError, OSError, ValueError) as exc:
        raise MediaError(f"not a readable video: {exc}") from None
    if not duration and fps:
        duration = frames / fps
    return VideoInfo(frames=int(frames), fps=fps, width=int(width), height=int(height),
                     duration=round(float(duration or 0.0), 6))


def loaded_video(source: VideoInfo, *, force_rate: float = 0, frame_load_cap: int = 0,
                 skip_first_frames: int = 0, select_every_nth: int = 1) -> VideoInfo:
    """What Video Helper Suite's loader would produce from `source` with these options."""
    fps = force_rate if force_rate > 0 else source.fps
    frames = source.frames
    if force_rate > 0 and source.fps:
        frames = math.floor(source.duration * fps) if source.duration else frames
    frames = max(0, frames - max(0, skip_first_frames))
    nth = max(1, select_every_nth)
    frames = math.ceil(frames / nth)
    if frame_load_cap > 0:
        frames = min(frames, frame_load_cap)
    fps = float(Fraction(fps).limit_denominator(100000) / nth) if fps else 0.0
    duration = frames / fps if fps else 0.0
    return VideoInfo(frames=frames, fps=fps, width=source.width, height=source.height,
                     duration=round(duration, 6))
