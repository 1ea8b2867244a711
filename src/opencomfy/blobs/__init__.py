"""Content-addressed blob storage: `BlobStore` (base.py) on local disk (local.py) or S3 (s3.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from opencomfy.blobs.base import BlobNotFound, BlobStore, BlobTooLarge, StagedBlob, content_key, is_digest

if TYPE_CHECKING:
    from opencomfy.config import Config

__all__ = ["BlobNotFound", "BlobStore", "BlobTooLarge", "StagedBlob", "build_blob_store",
           "content_key", "is_digest"]


def build_blob_store(config: "Config") -> BlobStore:
    """The store the configuration names ("local", the default, or "s3")."""
    if config.blob_store == "s3":
        from opencomfy.blobs.s3 import s3_store_from_env

        return s3_store_from_env(staging_dir=config.state_dir / "blob-staging",
                                 endpoint=config.s3_endpoint or "", bucket=config.s3_bucket,
                                 region=config.s3_region, prefix=config.s3_prefix,
                                 public_endpoint=config.s3_public_endpoint)
    from opencomfy.blobs.local import LocalBlobStore

    return LocalBlobStore(config.state_dir / "blobs")
