"""Image work for the file routes: channel extraction, preview re-encoding, thumbnails,
mask merging and the upload size limits. Pillow only; callers run these in a thread.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from PIL import Image, ImageOps, PngImagePlugin, UnidentifiedImageError

# The spec's limits for uploaded images (and a mask's original).
MAX_EDGE = 16384
MAX_PIXELS = 64 * 1024 * 1024
THUMBNAIL_MIN, THUMBNAIL_MAX = 64, 1024
PREVIEW_FORMATS = ("webp", "jpeg")


class ImageError(ValueError):
    """The file is not an image Pillow can read, or the request cannot apply to it."""


@dataclass(frozen=True)
class Rendition:
    """How to re-render an image: a channel, a preview format, and/or a thumbnail size."""

    channel: str | None = None          # "rgb" | "a"
    preview_format: str | None = None   # "webp" | "jpeg"
    quality: int = 90
    thumbnail: int | None = None        # fit within N x N, JPEG

    @property
    def media_type(self) -> str:
        if self.thumbnail:
            return "image/jpeg"
        if self.preview_format:
            return f"image/{self.preview_format}"
        return "image/png"

    @property
    def extension(self) -> str:
        return {"image/jpeg": ".jpg", "image/webp": ".webp"}.get(self.media_type, ".png")

    def key(self) -> str:
        return f"{self.channel}|{self.preview_format}|{self.quality}|{self.thumbnail}"


def parse_preview(value: str, channel: str | None) -> tuple[str, int]:
    """ComfyUI's `preview=format;quality`: webp or jpeg (anything else, or an alpha
    channel, means webp), quality 90 unless the last part is a number."""
    parts = value.split(";")
    fmt = parts[0].strip().lower()
    if fmt not in PREVIEW_FORMATS or channel == "a":
        fmt = "webp"
    quality = 90
    if len(parts) > 1 and parts[-1].strip().isdigit():
        quality = max(1, min(100, int(parts[-1].strip())))
    return fmt, quality


def _open(path: Path | IO[bytes], *, draft: int | None = None) -> Image.Image:
    try:
        img = Image.open(path)
        if draft:
            # JPEG decoders can scale by 1/2..1/8 while decoding: much faster thumbnails.
            img.draft("RGB", (draft, draft))
        img.load()
        return img
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError) as exc:
        raise ImageError(f"not a readable image: {exc}") from None


def _to_8bit(img: Image.Image) -> Image.Image:
    """16/32-bit integer images (16-bit PNGs) as 8-bit grayscale: Pillow's own conversion
    clips everything above 255 to white."""
    if img.mode.startswith("I"):
        import numpy as np

        arr = np.asarray(img).astype(np.uint32)
        shift = 8 if arr.max(initial=0) <= 0xFFFF else 24
        return Image.fromarray((arr >> shift).astype(np.uint8), "L")
    return img


def _alpha_of(img: Image.Image) -> Image.Image:
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        return img.convert("RGBA").getchannel("A")
    return Image.new("L", img.size, 255)


def render(path: Path, rendition: Rendition) -> bytes:
    """Re-encode the image at `path` as `rendition` says; raises ImageError."""
    with _open(path, draft=rendition.thumbnail) as src:
        img = _to_8bit(ImageOps.exif_transpose(src) if rendition.thumbnail else src)
        if rendition.channel == "rgb":
            img = img.convert("RGB")
        elif rendition.channel == "a":
            # As ComfyUI: a transparent black image whose alpha is the source's alpha;
            # the mask editor reads the mask from it.
            alpha = _alpha_of(img)
            img = Image.new("RGBA", img.size, (0, 0, 0, 0))
            img.putalpha(alpha)
        out = io.BytesIO()
        if rendition.thumbnail:
            img = img.getchannel("A").convert("RGB") if rendition.channel == "a" else img.convert("RGB")
            img.thumbnail((rendition.thumbnail, rendition.thumbnail), Image.Resampling.LANCZOS)
            img.save(out, format="JPEG", quality=rendition.quality)
        elif rendition.preview_format:
            if rendition.preview_format == "jpeg" and img.mode not in ("RGB", "L"):
                img = img.convert("RGB")
            elif img.mode not in ("RGB", "RGBA", "L", "LA"):
                img = img.convert("RGBA")
            img.save(out, format=rendition.preview_format.upper(), quality=rendition.quality)
        else:
            img.save(out, format="PNG")
        return out.getvalue()


def check_upload_limits(data: IO[bytes]) -> None:
    """Refuse an image over the spec's limits (16384 px per edge, 64 MP).

    Only the header is read. Files that are not images (videos, audio, 3D models go through
    /upload/image too) pass untouched.
    """
    data.seek(0)
    try:
        with Image.open(data) as img:
            width, height = img.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return
    except Image.DecompressionBombError:
        raise ImageError("image too large") from None
    finally:
        data.seek(0)
    if width > MAX_EDGE or height > MAX_EDGE or width * height > MAX_PIXELS:
        raise ImageError(f"image too large: {width}x{height} (limits: {MAX_EDGE} px per edge, "
                         f"{MAX_PIXELS} pixels)")


def merge_mask(*, original: Path, mask: IO[bytes]) -> bytes:
    """The original image with the uploaded image's alpha as its alpha channel, as PNG.

    The original's PNG text chunks (ComfyUI's workflow metadata) are kept. A mask of another
    size is scaled to the original's.
    """
    check_upload_limits(mask)
    with _open(original) as base:
        width, height = base.size
        if width > MAX_EDGE or height > MAX_EDGE or width * height > MAX_PIXELS:
            raise ImageError("original image too large")
        text = dict(getattr(base, "text", {}) or {})
        merged = base.convert("RGBA")
    mask.seek(0)
    with _open(mask) as mask_img:
        alpha = _alpha_of(mask_img)
    if alpha.size != merged.size:
        alpha = alpha.resize(merged.size, Image.Resampling.BILINEAR)
    merged.putalpha(alpha)
    info = PngImagePlugin.PngInfo()
    for key, value in text.items():
        info.add_text(key, str(value))
    out = io.BytesIO()
    merged.save(out, format="PNG", pnginfo=info, compress_level=4)
    return out.getvalue()
