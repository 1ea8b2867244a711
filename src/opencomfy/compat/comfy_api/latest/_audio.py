"""AUDIO values (``{"waveform": [B, channels, samples] float, "sample_rate": int}``) to and
from files with PyAV: decoding, resampling and encoding (FLAC, MP3, Opus, and the AAC track
of a video), shared by the audio nodes, the video values and the V3 ``ui`` helpers.

Encoding goes through :class:`AudioTrack`, which feeds samples to an encoder in the frame
size it wants and converts rate and sample format on the way (libswresample), so a caller
may hand it any number of samples at a time and nothing is decoded or held twice.
"""

from __future__ import annotations

import io
import json
import os

import av
import numpy as np
import torch
from av.error import FFmpegError

_OPUS_RATES = (8000, 12000, 16000, 24000, 48000)
_BITRATES = {"64k": 64000, "96k": 96000, "128k": 128000, "192k": 192000, "320k": 320000}
_CODECS = {"flac": "flac", "mp3": "libmp3lame", "opus": "libopus"}
# FFmpeg's default layout per channel count (above 8 we keep the first two channels).
_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}


class AudioDecodeError(ValueError):
    """The file holds no audio FFmpeg can read (not media, truncated, or no samples)."""


def layout_for(channels: int) -> str:
    return _LAYOUTS.get(int(channels), "stereo")


def _as_float(array: np.ndarray) -> np.ndarray:
    """Decoded PCM in whatever sample type -> float32 in -1..1."""
    if array.dtype == np.float32:
        return array
    if array.dtype == np.float64:
        return array.astype(np.float32)
    if array.dtype == np.int16:
        return array.astype(np.float32) / 32768.0
    if array.dtype == np.int32:
        return array.astype(np.float32) / 2147483648.0
    if array.dtype == np.uint8:
        return (array.astype(np.float32) - 128.0) / 128.0
    raise AudioDecodeError(f"unsupported sample type {array.dtype}")


def frame_samples(frame: av.AudioFrame) -> np.ndarray:
    """One decoded frame as float32 ``[channels, samples]`` (packed formats are de-interleaved)."""
    array = frame.to_ndarray()
    channels = len(frame.layout.channels)
    if not frame.format.is_planar:
        array = array.reshape(-1, channels).T
    return _as_float(array)


def decode_audio_stream(container, *, start: float = 0.0, duration: float = 0.0) -> dict | None:
    """The first audio stream of an open container as an AUDIO dict, or None without one.

    ``start``/``duration`` (seconds, relative to the stream's first sample; duration 0 = to the
    end) cut a window: the decoder seeks near ``start`` and keeps only the samples inside.
    """
    if not container.streams.audio:
        return None
    stream = container.streams.audio[0]
    rate = stream.codec_context.sample_rate or stream.rate
    origin = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
    first = int(round(start * rate))
    last = first + int(round(duration * rate)) if duration > 0 else None
    if start > 0 and stream.time_base is not None:
        container.seek(int((origin + start) / stream.time_base), stream=stream, backward=True)
    chunks: list[np.ndarray] = []
    position = None
    for frame in container.decode(stream):
        samples = frame_samples(frame)
        if frame.time is not None:
            position = int(round((frame.time - origin) * rate))
        elif position is None:
            position = 0
        lo, hi = max(first - position, 0), samples.shape[1]
        if last is not None:
            hi = min(hi, last - position)
        if hi > lo:
            chunks.append(np.ascontiguousarray(samples[:, lo:hi]))
        position += samples.shape[1]
        if last is not None and position >= last:
            break
    if not chunks:
        return None
    waveform = torch.from_numpy(np.concatenate(chunks, axis=1)).unsqueeze(0)
    return {"waveform": waveform, "sample_rate": int(rate)}


def load_audio(path: str | io.BytesIO, *, start: float = 0.0, duration: float = 0.0) -> dict:
    """Decode the first audio stream of a file (any format FFmpeg reads, videos included)."""
    name = path if isinstance(path, str) else "<memory>"
    try:
        with av.open(path, mode="r") as container:
            if not container.streams.audio:
                raise AudioDecodeError(f"{os.path.basename(name)} has no audio stream")
            audio = decode_audio_stream(container, start=start, duration=duration)
    except AudioDecodeError:
        raise
    except (FFmpegError, OSError, ValueError) as exc:
        raise AudioDecodeError(f"{os.path.basename(name)} is not a readable audio file: {exc}") from None
    if audio is None:
        raise AudioDecodeError(f"{os.path.basename(name)} holds no audio samples")
    return audio


def resample(waveform: torch.Tensor, from_rate: int, to_rate: int) -> torch.Tensor:
    """``[..., channels, samples]`` from one sample rate to another (libswresample)."""
    if int(from_rate) == int(to_rate):
        return waveform
    shape = waveform.shape
    flat = waveform.reshape(-1, shape[-2], shape[-1]).float().cpu().numpy()
    channels = shape[-2]
    out = []
    for clip in flat:
        # Channels beyond a known layout are resampled in pairs/singles of their own.
        groups = [clip] if channels in _LAYOUTS else [clip[i:i + 1] for i in range(channels)]
        parts = [_resample_group(np.ascontiguousarray(g), int(from_rate), int(to_rate)) for g in groups]
        out.append(np.concatenate(parts, axis=0))
    length = min(o.shape[1] for o in out)
    result = torch.from_numpy(np.stack([o[:, :length] for o in out]))
    return result.reshape(*shape[:-2], channels, length).to(waveform.dtype)


def _resample_group(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    layout = layout_for(samples.shape[0])
    resampler = av.AudioResampler(format="fltp", layout=layout, rate=to_rate)
    frame = av.AudioFrame.from_ndarray(samples.astype(np.float32), format="fltp", layout=layout)
    frame.sample_rate, frame.pts = from_rate, 0
    frames = resampler.resample(frame) + resampler.resample(None)
    if not frames:
        return np.zeros((samples.shape[0], 0), dtype=np.float32)
    return np.concatenate([f.to_ndarray() for f in frames], axis=1)


class AudioTrack:
    """An audio stream being encoded into an open container, fed float samples in any sizes.

    At most two channels are written (mono stays mono). ``rate`` is the input's sample rate;
    ``codec_rate`` the encoder's when it must differ (Opus takes only a few rates).
    """

    def __init__(self, container, codec: str, *, rate: int, channels: int,
                 codec_rate: int | None = None, bit_rate: int | None = None,
                 vbr_quality: bool = False) -> None:
        self.channels = 1 if channels == 1 else 2
        self.rate = int(rate)
        layout = layout_for(self.channels)
        self.stream = container.add_stream(codec, rate=int(codec_rate or rate), layout=layout)
        context = self.stream.codec_context
        if bit_rate:
            context.bit_rate = bit_rate
        if vbr_quality:
            context.qscale = True  # LAME's VBR with quality 0 (global_quality 0): "V0"
        # Opened now (not at the first packet) to learn the frame size the encoder wants.
        context.open(strict=False)
        self._resampler = av.AudioResampler(format=self.stream.format.name, layout=layout,
                                            rate=self.stream.rate,
                                            frame_size=context.frame_size or None)
        self._container = container
        self._pts = 0

    def write(self, samples: np.ndarray) -> None:
        """Encode ``[channels, n]`` float samples (more than two channels: the first two)."""
        if samples.shape[1] == 0:
            return
        chunk = np.ascontiguousarray(samples[: self.channels], dtype=np.float32)
        if chunk.shape[0] < self.channels:  # a mono source into a stereo track
            chunk = np.repeat(chunk, self.channels, axis=0)
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=layout_for(self.channels))
        frame.sample_rate, frame.pts = self.rate, self._pts
        self._pts += chunk.shape[1]
        self._encode(self._resampler.resample(frame))

    def close(self) -> None:
        """Flush the resampler and the encoder."""
        self._encode(self._resampler.resample(None))
        self._container.mux(self.stream.encode(None))

    def _encode(self, frames) -> None:
        for frame in frames:
            self._container.mux(self.stream.encode(frame))


def prompt_metadata(prompt, extra_pnginfo) -> dict[str, str]:
    """The file metadata ComfyUI writes: ``prompt`` and every extra_pnginfo key, as JSON."""
    from opencomfy.compat.comfy.cli_args import args

    if getattr(args, "disable_metadata", False):
        return {}
    out = {}
    if prompt is not None:
        out["prompt"] = json.dumps(prompt)
    for key, value in (extra_pnginfo or {}).items():
        out[key] = json.dumps(value)
    return out


def hidden_metadata(cls) -> dict[str, str]:
    """:func:`prompt_metadata` of a V3 node class's hidden inputs (none without them)."""
    if cls is None or not cls.hidden:
        return {}
    return prompt_metadata(cls.hidden.prompt, cls.hidden.extra_pnginfo)


def write_audio_file(target, waveform: torch.Tensor, sample_rate: int, *, format: str = "flac",
                     quality: str = "128k", metadata: dict | None = None) -> None:
    """Encode one clip (``[channels, samples]`` float) as a ``format`` file into ``target``
    (a path or a writable binary file object)."""
    if format not in _CODECS:
        raise ValueError(f"unsupported audio format {format!r}")
    rate = int(sample_rate)
    codec_rate = None
    if format == "opus" and rate not in _OPUS_RATES:
        codec_rate = next((r for r in _OPUS_RATES if r >= rate), 48000)
    data = waveform.detach().float().cpu().numpy()
    with av.open(target, mode="w", format=format) as container:
        for key, value in (metadata or {}).items():
            container.metadata[key] = value
        track = AudioTrack(container, _CODECS[format], rate=rate, channels=data.shape[0],
                           codec_rate=codec_rate,
                           bit_rate=_BITRATES.get(quality) if format != "flac" else None,
                           vbr_quality=format == "mp3" and quality == "V0")
        track.write(data)
        track.close()


def encode_audio(waveform, sample_rate: int, *, format: str = "flac", quality: str = "128k",
                 metadata: dict | None = None) -> bytes:
    """One clip (``[channels, samples]`` float) as the bytes of a ``format`` file."""
    buffer = io.BytesIO()
    write_audio_file(buffer, waveform, sample_rate, format=format, quality=quality, metadata=metadata)
    return buffer.getvalue()


def save_audio_batch(audio: dict, *, filename_prefix: str, directory: str,
                     metadata: dict | None, format: str = "flac", quality: str = "128k"
                     ) -> tuple[str, list[str]]:
    """Write every clip of the batch as ``<prefix>_<counter>_.<format>``; (subfolder, names).

    Names come from folder_paths' counters and files are created exclusively, so two jobs
    saving under one prefix never overwrite each other.
    """
    from opencomfy.compat import folder_paths
    from opencomfy.nodes.image_saving import write_numbered_file

    if audio is None or "waveform" not in audio:
        raise ValueError("no audio to save (the input is empty, e.g. a video without sound)")
    target = folder_paths.resolve_save_target(filename_prefix, directory)
    names = []
    for batch_number, waveform in enumerate(audio["waveform"]):
        stem = target.filename.replace("%batch_num%", str(batch_number))
        names.append(write_numbered_file(
            target, stem=stem, extension=format,
            write=lambda f, w=waveform: write_audio_file(
                f, w, audio["sample_rate"], format=format, quality=quality, metadata=metadata)))
    return target.subfolder, names


def save_audio(audio: dict, filename_prefix: str, directory: str, cls, *, format: str = "flac",
               quality: str = "128k") -> tuple[str, list[str]]:
    """For the V3 ``ui`` helpers: the metadata comes from the node class's hidden inputs."""
    return save_audio_batch(audio, filename_prefix=filename_prefix, directory=directory,
                            metadata=hidden_metadata(cls), format=format, quality=quality)
