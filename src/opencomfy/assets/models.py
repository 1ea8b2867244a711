"""SQLAlchemy models of assets: content rows (one per blake3 digest), records and tags.

Content is global (stored once however many workspaces upload it); records and tags are
tenant-owned and carry `workspace_id`. The schema is created by migrations 0003_assets_tasks and 0005_asset_counts.
Times are Unix milliseconds; the HTTP layer writes RFC 3339.
"""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from opencomfy.db.models import Base


class AssetContent(Base):
    """Bytes with one digest. `in_store`: the bytes are in the blob store (else only on disk
    at the `file_path` of the records that point here, e.g. seeded models)."""

    __tablename__ = "asset_contents"

    hash: Mapped[str] = mapped_column(String(71), primary_key=True)  # blake3:<64 hex>
    size_bytes: Mapped[int] = mapped_column(BigInteger, nullable=False)
    mime_type: Mapped[str | None] = mapped_column(String(255))
    in_store: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    source_url: Mapped[str | None] = mapped_column(String(2048))
    created_at: Mapped[int] = mapped_column(BigInteger, nullable=False)

    __table_args__ = (Index("ix_asset_contents_source_url", "source_url"),)


class Asset(Base):
    """A user-visible record: a name, tags and metadata over one content."""

    __tablename__ = "assets"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(String(64), nullable=False)
    content_hash: Mapped[str] = mapped_column(String(71), ForeignKey("asset_contents.hash"),
                                              nullable=False)
    name: Mapped[str] = mapped_column(String(512), nullable=False)
    mime_type: Mapped[str | None] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    user_metadata: Mapped[dict] = mapped_column(JSON, nullable=False, default=dict)
    system_metadata: Mapped[dict] = mapped_column(JSON, nullable=False, default=dict)
    job_id: Mapped[str | None] = mapped_column(String(64))
    preview_id: Mapped[str | None] = mapped_column(String(36))
    file_path: Mapped[str | None] = mapped_column(Text)  # a local file this record mirrors
    file_mtime_ns: Mapped[int | None] = mapped_column(BigInteger)
    is_immutable: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    is_missing: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    created_at: Mapped[int] = mapped_column(BigInteger, nullable=False)
    updated_at: Mapped[int] = mapped_column(BigInteger, nullable=False)
    last_access_time: Mapped[int] = mapped_column(BigInteger, nullable=False)

    __table_args__ = (
        Index("ix_assets_ws_created", "workspace_id", "created_at", "id"),
        Index("ix_assets_ws_updated", "workspace_id", "updated_at", "id"),
        Index("ix_assets_ws_name", "workspace_id", "name", "id"),
        Index("ix_assets_ws_size", "workspace_id", "size", "id"),
        Index("ix_assets_ws_access", "workspace_id", "last_access_time", "id"),
        Index("ix_assets_ws_hash", "workspace_id", "content_hash"),
        Index("ix_assets_hash", "content_hash"),
        Index("ix_assets_ws_job", "workspace_id", "job_id"),
        Index("ix_assets_ws_file", "workspace_id", "file_path"),
    )


class AssetTag(Base):
    """One tag on one record; `origin` is "system" (what the asset is) or "user"."""

    __tablename__ = "asset_tags"

    asset_id: Mapped[str] = mapped_column(String(36), ForeignKey("assets.id", ondelete="CASCADE"),
                                          primary_key=True)
    tag: Mapped[str] = mapped_column(String(255), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(String(64), nullable=False)
    origin: Mapped[str] = mapped_column(String(8), nullable=False, default="user")

    __table_args__ = (Index("ix_asset_tags_ws_tag", "workspace_id", "tag", "asset_id"),)


class AssetCount(Base):
    """How many records a workspace has (kept by the repository with every insert and delete)."""

    __tablename__ = "asset_counts"

    workspace_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger, nullable=False)
