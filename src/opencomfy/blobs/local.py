"""`LocalBlobStore`: objects as files under one folder (the default store)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import AsyncIterator

from opencomfy.blobs.base import BlobNotFound, BlobStore


class LocalBlobStore(BlobStore):
    """Keys map to files under `root`; staging lives in the same folder so a move is a rename."""

    kind = "local"

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    @property
    def staging_dir(self) -> Path:
        return self.root / ".staging"

    async def open(self) -> None:
        self.staging_dir.mkdir(parents=True, exist_ok=True)
        # Staged files left by a killed process are garbage: nobody will commit them.
        for leftover in self.staging_dir.glob(".staging-*"):
            leftover.unlink(missing_ok=True)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root not in path.parents:
            raise ValueError(f"bad blob key {key!r}")
        return path

    def local_path(self, key: str) -> Path | None:
        path = self._path(key)
        return path if path.is_file() else None

    async def put_file(self, key: str, path: Path, *, content_type: str | None = None) -> None:
        target = self._path(key)

        def move() -> None:
            target.parent.mkdir(parents=True, exist_ok=True)
            # Same content under the same key: the rename replaces it atomically.
            os.replace(path, target)

        await asyncio.to_thread(move)

    async def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    async def iter_bytes(self, key: str, *, chunk_size: int = 1 << 20) -> AsyncIterator[bytes]:
        path = self._path(key)
        try:
            f = open(path, "rb")
        except FileNotFoundError:
            raise BlobNotFound(key) from None
        with f:
            while chunk := await asyncio.to_thread(f.read, chunk_size):
                yield chunk

    async def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)
