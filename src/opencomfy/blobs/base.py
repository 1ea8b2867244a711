"""The blob store contract: content-addressed bytes kept on local disk or in S3.

Bytes arrive through a `StagedBlob`: a temporary file on local disk that hashes (blake3) and
counts what is written to it, so the digest is known the moment the last chunk lands and the
file is never read a second time to hash it. `BlobStore.put_file` then moves (local) or
uploads (S3) the staged file under its key. Keys are plain strings; content lives under
`content_key(digest)`.
"""

from __future__ import annotations

import abc
import os
import re
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import AsyncIterator

import blake3

HASH_PREFIX = "blake3:"
PARALLEL_HASH_MIN = 256 * 1024  # smaller writes hash inline (a thread hand-off costs more)
_DIGEST_RE = re.compile(r"^blake3:[a-f0-9]{64}$")


class BlobTooLarge(Exception):
    """More bytes arrived than the caller allowed."""


class BlobNotFound(Exception):
    """No object is stored under the key."""


def is_digest(value: str) -> bool:
    """True for the spec's `blake3:<64 hex>` form."""
    return bool(_DIGEST_RE.match(value))


def content_key(digest: str) -> str:
    """The store key for content with this `blake3:<hex>` digest (fanned out by prefix)."""
    hexdigest = digest.removeprefix(HASH_PREFIX)
    return f"blobs/{hexdigest[:2]}/{hexdigest}"


class StagedBlob:
    """A temporary file that hashes while it is written; `abort()` removes it.

    Writes are synchronous (call them from a worker thread for large bodies); `limit`
    bounds the size so that an oversize body stops as soon as it passes the limit.
    """

    def __init__(self, directory: Path, *, limit: int | None = None) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f".staging-{uuid.uuid4().hex}"
        self._file = open(self.path, "wb")
        self._hasher = blake3.blake3()
        self._hashing: ThreadPoolExecutor | None = None
        self.size = 0
        self.limit = limit
        self.head = b""  # the first bytes, kept for format checks (safetensors vs pickle)

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.limit is not None and self.size > self.limit:
            raise BlobTooLarge(f"content is larger than {self.limit} bytes")
        if len(self.head) < 64:
            self.head += chunk[: 64 - len(self.head)]
        if len(chunk) < PARALLEL_HASH_MIN:
            self._hasher.update(chunk)
            self._file.write(chunk)
            return
        # Hash and write at the same time (both release the GIL): a large body costs
        # max(hash, write) instead of their sum.
        if self._hashing is None:
            self._hashing = ThreadPoolExecutor(1, thread_name_prefix="blake3")
        hashed = self._hashing.submit(self._hasher.update, chunk)
        try:
            self._file.write(chunk)
        finally:
            hashed.result()

    def _stop_hashing(self) -> None:
        if self._hashing is not None:
            self._hashing.shutdown(wait=True)
            self._hashing = None

    def finish(self) -> str:
        """Close the file and return its digest (`blake3:<hex>`)."""
        self._stop_hashing()
        self._file.close()
        return HASH_PREFIX + self._hasher.hexdigest()

    @property
    def raw_file(self):
        """The open file, for writers that build their own bytes (an export zip); no hashing."""
        return self._file

    def seal(self) -> None:
        """Close a file written through `raw_file`, recording its size."""
        self.size = self._file.tell()
        self._file.close()

    @property
    def digest(self) -> str:
        return HASH_PREFIX + self._hasher.hexdigest()

    def abort(self) -> None:
        """Forget the staged bytes (nothing half-written stays behind)."""
        self._stop_hashing()
        if not self._file.closed:
            self._file.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


def hash_file(path: Path, *, chunk_size: int = 1 << 20) -> tuple[str, int]:
    """Digest and size of a file already on disk (used when seeding folders)."""
    hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            hasher.update(chunk)
            size += len(chunk)
    return HASH_PREFIX + hasher.hexdigest(), size


class BlobStore(abc.ABC):
    """Where asset bytes live. Build with the implementation's constructor, then `open()`."""

    kind: str = "abstract"

    @property
    @abc.abstractmethod
    def staging_dir(self) -> Path:
        """The local folder where `stage()` puts temporary files."""

    def stage(self, *, limit: int | None = None) -> StagedBlob:
        """A new temporary file to write (and hash) incoming bytes into."""
        return StagedBlob(self.staging_dir, limit=limit)

    async def open(self) -> None:
        """Prepare the store (create folders, check the bucket). A store may need nothing."""
        return None

    async def close(self) -> None:
        """Release connections. A store may hold none."""
        return None

    @abc.abstractmethod
    async def put_file(self, key: str, path: Path, *, content_type: str | None = None) -> None:
        """Store the file at `path` under `key`; the file is consumed (moved or removed)."""

    @abc.abstractmethod
    async def exists(self, key: str) -> bool:
        """True when an object is stored under `key`."""

    @abc.abstractmethod
    def iter_bytes(self, key: str, *, chunk_size: int = 1 << 20) -> AsyncIterator[bytes]:
        """The object's bytes in chunks; raises BlobNotFound when absent."""

    @abc.abstractmethod
    async def delete(self, key: str) -> None:
        """Remove the object (no error when it is already gone)."""

    def local_path(self, key: str) -> Path | None:
        """The object's file when the store is a local folder (served with sendfile)."""
        return None

    async def signed_url(self, key: str, *, expires_in: int = 3600,
                         filename: str | None = None, content_type: str | None = None) -> str | None:
        """A time-limited URL anyone can GET the object from, or None (local store)."""
        return None
