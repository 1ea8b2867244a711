"""Saving AUDIO values (``{"waveform": [B, channels, samples], "sample_rate"}``) for the V3
``ui`` helpers: FLAC, MP3 or Opus through PyAV, with the prompt in the file's metadata."""

from __future__ import annotations

import io
import json
import os

import av
import numpy as np

_OPUS_RATES = (8000, 12000, 16000, 24000, 48000)
_BITRATES = {"64k": 64000, "96k": 96000, "128k": 128000, "192k": 192000, "320k": 320000}
_CODECS = {"flac": "flac", "mp3": "libmp3lame", "opus": "libopus"}


def _metadata(cls) -> dict[str, str]:
    from opencomfy.compat.comfy.cli_args import args

    if args.disable_metadata or cls is None or not cls.hidden:
        return {}
    out = {}
    if cls.hidden.prompt is not None:
        out["prompt"] = json.dumps(cls.hidden.prompt)
    for key, value in (cls.hidden.extra_pnginfo or {}).items():
        out[key] = json.dumps(value)
    return out


def _opus_rate(rate: int) -> int:
    return next((r for r in _OPUS_RATES if r >= rate), 48000)


def encode_audio(waveform, sample_rate: int, *, format: str = "flac", quality: str = "128k",
                 metadata: dict | None = None) -> bytes:
    """One clip (``[channels, samples]`` float) as a file in ``format``."""
    if format not in _CODECS:
        raise ValueError(f"unsupported audio format {format!r}")
    data = waveform.float().cpu().numpy()[:2]
    layout = "mono" if data.shape[0] == 1 else "stereo"
    rate = int(sample_rate)
    if format == "opus" and rate not in _OPUS_RATES:
        target = _opus_rate(rate)
        # Linear resampling: Opus only takes a few rates (ComfyUI uses torchaudio here).
        positions = np.linspace(0, data.shape[1] - 1, int(round(data.shape[1] * target / rate)))
        data = np.stack([np.interp(positions, np.arange(data.shape[1]), ch) for ch in data])
        rate = target
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format=format) as container:
        for key, value in (metadata or {}).items():
            container.metadata[key] = value
        stream = container.add_stream(_CODECS[format], rate=rate, layout=layout)
        if format != "flac" and quality in _BITRATES:
            stream.bit_rate = _BITRATES[quality]
        frame_size = stream.codec_context.frame_size or data.shape[1] or 1
        for start in range(0, data.shape[1], frame_size):
            chunk = np.ascontiguousarray(data[:, start:start + frame_size], dtype=np.float32)
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=layout)
            frame.sample_rate = rate
            frame.pts = start
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return buffer.getvalue()


def save_audio(audio: dict, filename_prefix: str, directory: str, cls, *, format: str = "flac",
               quality: str = "128k") -> tuple[str, list[str]]:
    """Write every clip of the batch; returns (subfolder, file names)."""
    from opencomfy.compat import folder_paths

    full_folder, filename, counter, subfolder, _ = folder_paths.get_save_image_path(
        filename_prefix, directory)
    metadata = _metadata(cls)
    names = []
    for batch_number, waveform in enumerate(audio["waveform"].cpu()):
        name = f"{filename.replace('%batch_num%', str(batch_number))}_{counter:05}_.{format}"
        data = encode_audio(waveform, audio["sample_rate"], format=format, quality=quality,
                            metadata=metadata)
        with open(os.path.join(full_folder, name), "wb") as f:
            f.write(data)
        names.append(name)
        counter += 1
    return subfolder, names
