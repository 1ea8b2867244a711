"""assets (content, records, tags) and background tasks

Revision ID: 0003_assets_tasks
Revises: 0002_job_counts
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_assets_tasks"
down_revision = "0002_job_counts"  # after the jobs counters migration
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "asset_contents",
        sa.Column("hash", sa.String(71), primary_key=True),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("mime_type", sa.String(255)),
        sa.Column("in_store", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("source_url", sa.String(2048)),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    # Was for download dedup by URL; downloads now match the workspace's own records instead.
    op.create_index("ix_asset_contents_source_url", "asset_contents", ["source_url"])
    op.create_table(
        "assets",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("workspace_id", sa.String(64), nullable=False),
        sa.Column("content_hash", sa.String(71), sa.ForeignKey("asset_contents.hash"), nullable=False),
        sa.Column("name", sa.String(512), nullable=False),
        sa.Column("mime_type", sa.String(255)),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("user_metadata", sa.JSON, nullable=False),
        sa.Column("system_metadata", sa.JSON, nullable=False),
        sa.Column("job_id", sa.String(64)),
        sa.Column("preview_id", sa.String(36)),
        sa.Column("file_path", sa.Text),
        sa.Column("file_mtime_ns", sa.BigInteger),
        sa.Column("is_immutable", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("is_missing", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.Column("last_access_time", sa.BigInteger, nullable=False),
    )
    # Serve assets.repository.page_assets: one index per sort key, keyset on (key, id).
    op.create_index("ix_assets_ws_created", "assets", ["workspace_id", "created_at", "id"])
    op.create_index("ix_assets_ws_updated", "assets", ["workspace_id", "updated_at", "id"])
    op.create_index("ix_assets_ws_name", "assets", ["workspace_id", "name", "id"])
    op.create_index("ix_assets_ws_size", "assets", ["workspace_id", "size", "id"])
    op.create_index("ix_assets_ws_access", "assets", ["workspace_id", "last_access_time", "id"])
    # Serves the hash lookups (HEAD /assets/hash, from-hash, upload dedup).
    op.create_index("ix_assets_ws_hash", "assets", ["workspace_id", "content_hash"])
    # Serves the content reference count when a record is deleted.
    op.create_index("ix_assets_hash", "assets", ["content_hash"])
    # Serves export by job and the jobs' outputs lookup.
    op.create_index("ix_assets_ws_job", "assets", ["workspace_id", "job_id"])
    # Serves seed (already registered?) and prune.
    op.create_index("ix_assets_ws_file", "assets", ["workspace_id", "file_path"])
    op.create_table(
        "asset_tags",
        sa.Column("asset_id", sa.String(36), sa.ForeignKey("assets.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("tag", sa.String(255), primary_key=True),
        sa.Column("workspace_id", sa.String(64), nullable=False),
        sa.Column("origin", sa.String(8), nullable=False),
    )
    # Serves include/exclude tag filters, /api/tags counts and the histogram.
    op.create_index("ix_asset_tags_ws_tag", "asset_tags", ["workspace_id", "tag", "asset_id"])
    op.create_table(
        "tasks",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("workspace_id", sa.String(64), nullable=False),
        sa.Column("task_name", sa.String(64), nullable=False),
        sa.Column("idempotency_key", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("result", sa.JSON),
        sa.Column("error_message", sa.Text),
        sa.Column("progress", sa.Float, nullable=False, server_default="0"),
        sa.Column("create_time", sa.BigInteger, nullable=False),
        sa.Column("update_time", sa.BigInteger, nullable=False),
        sa.Column("started_at", sa.BigInteger),
        sa.Column("completed_at", sa.BigInteger),
    )
    # Serves tasks.repository.page_tasks.
    op.create_index("ix_tasks_ws_create", "tasks", ["workspace_id", "create_time"])
    # Serves the idempotency lookup and the task_name filter.
    op.create_index("ix_tasks_ws_name_key", "tasks", ["workspace_id", "task_name", "idempotency_key"])
    # Serves tasks.repository.fail_unfinished (recovery after a restart).
    op.create_index("ix_tasks_status", "tasks", ["status"])


def downgrade() -> None:
    op.drop_table("tasks")
    op.drop_table("asset_tags")
    op.drop_table("assets")
    op.drop_table("asset_contents")
