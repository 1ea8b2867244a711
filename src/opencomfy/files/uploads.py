"""Storing uploaded files the way ComfyUI names them.

A clashing name gets ` (1)`, ` (2)`, ... before its extension, unless the existing file
holds exactly the same bytes: then the upload is the same file and the name is reused
without writing anything. `overwrite` replaces whatever is there.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from opencomfy.files.paths import confined_path, UnsafePath

_HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class StoredUpload:
    """Where an upload ended up: its final name (maybe suffixed) and whether bytes were written."""

    path: Path
    name: str
    written: bool


def parse_flag(value: str | None) -> bool:
    """ComfyUI's multipart booleans: "true" or "1" mean yes, anything else no."""
    return (value or "").strip().lower() in ("true", "1")


def _digest(fileobj: IO[bytes]) -> str:
    fileobj.seek(0)
    h = hashlib.sha256()
    while chunk := fileobj.read(_HASH_CHUNK):
        h.update(chunk)
    fileobj.seek(0)
    return h.hexdigest()


def _same_bytes(path: Path, size: int, data_digest) -> bool:
    """Does the file at `path` hold the upload's bytes? (`data_digest` is computed lazily:
    only a clash of equal size needs it.)"""
    try:
        if not path.is_file() or path.stat().st_size != size:
            return False
        with open(path, "rb") as existing:
            return _digest(existing) == data_digest()
    except OSError:
        return False


def _size_of(data: IO[bytes]) -> int:
    data.seek(0, os.SEEK_END)
    size = data.tell()
    data.seek(0)
    return size


def choose_name(*, folder: Path, filename: str, data: IO[bytes], overwrite: bool) -> tuple[Path, str, bool]:
    """Pick the final path for `filename` in `folder`: (path, name, already_identical)."""
    path = confined_path(folder, filename)
    if not path.exists() or (overwrite and path.is_file()):
        return path, filename, False
    size = _size_of(data)
    digest = functools.cache(lambda: _digest(data))
    stem, ext = os.path.splitext(filename)
    n = 1
    while path.exists():
        if _same_bytes(path, size, digest):
            return path, filename, True
        filename = f"{stem} ({n}){ext}"
        path = confined_path(folder, filename)
        n += 1
    return path, filename, False


def write_atomically(path: Path, data: IO[bytes] | bytes) -> None:
    """Write to a temporary file beside `path`, then rename it into place (no torn files)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
    try:
        with os.fdopen(fd, "wb") as out:
            if isinstance(data, (bytes, bytearray)):
                out.write(data)
            else:
                data.seek(0)
                shutil.copyfileobj(data, out, _HASH_CHUNK)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def store_upload(*, root: Path, subfolder: str, filename: str, data: IO[bytes],
                 overwrite: bool, content: bytes | None = None) -> StoredUpload:
    """Store an upload under `root/subfolder` with ComfyUI's naming.

    `data` is what the client sent (used to detect an identical existing file); `content`,
    when given, is what gets written instead (a mask merged into its original image).
    """
    if filename.rsplit("/", 1)[-1] in ("", ".", ".."):
        raise UnsafePath("empty filename")
    folder = confined_path(root, subfolder)
    if folder.exists() and not folder.is_dir():
        raise UnsafePath("subfolder is a file")
    path, name, identical = choose_name(folder=folder, filename=filename, data=data,
                                        overwrite=overwrite)
    if identical:
        return StoredUpload(path=path, name=name, written=False)
    write_atomically(path, content if content is not None else data)
    return StoredUpload(path=path, name=name, written=True)
