"""Test data for the file routes: images, videos, multipart bodies."""

from __future__ import annotations

import io
import uuid
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin


def png_bytes(width: int = 8, height: int = 6, color=(10, 20, 30, 255), mode: str = "RGBA",
              text: dict[str, str] | None = None) -> bytes:
    img = Image.new(mode, (width, height), color if mode != "RGB" else color[:3])
    info = PngImagePlugin.PngInfo()
    for k, v in (text or {}).items():
        info.add_text(k, v)
    out = io.BytesIO()
    img.save(out, format="PNG", pnginfo=info)
    return out.getvalue()


def gradient_alpha_png(width: int = 16, height: int = 4) -> bytes:
    """RGBA image whose alpha at column x is x*16 (0..240), RGB constant (200, 100, 50)."""
    arr = np.zeros((height, width, 4), dtype=np.uint8)
    arr[..., 0], arr[..., 1], arr[..., 2] = 200, 100, 50
    arr[..., 3] = (np.arange(width, dtype=np.uint8) * 16)[None, :]
    out = io.BytesIO()
    Image.fromarray(arr, "RGBA").save(out, format="PNG")
    return out.getvalue()


def decode(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def write_video(path: Path, *, frames: int = 12, fps: int = 8, size=(64, 48),
                codec: str = "mpeg4", container: str | None = None) -> Path:
    """A small real video encoded with PyAV (FFmpeg)."""
    import av

    width, height = size
    with av.open(str(path), mode="w", format=container) as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            arr = np.full((height, width, 3), (i * 20) % 256, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def multipart(fields: dict[str, str] | None = None,
              files: dict[str, tuple[str, bytes, str]] | None = None) -> tuple[bytes, dict[str, str]]:
    """Encode a multipart/form-data body; returns (body, headers)."""
    boundary = "----oc" + uuid.uuid4().hex
    parts: list[bytes] = []
    for name, value in (fields or {}).items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                     .encode() + value.encode() + b"\r\n")
    for name, (filename, data, ctype) in (files or {}).items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
                     f'filename="{filename}"\r\nContent-Type: {ctype}\r\n\r\n'.encode() + data + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def headers(response) -> dict[str, str]:
    """A response's headers with lower-case names (servers differ in how they spell them)."""
    return {k.lower(): v for k, v in response.headers.items()}
