"""fair sharing: workspace_turns and a per-workspace pending index for the fair claim

Revision ID: 0006_fair_claim
Revises: 0005_asset_counts
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_fair_claim"
down_revision = "0005_asset_counts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Serves queue_sql.claim_next_job_fair (turn order) and take_turn (upsert by PK).
    op.create_table(
        "workspace_turns",
        sa.Column("workspace_id", sa.String(64), primary_key=True),
        sa.Column("last_claim_at", sa.BigInteger, nullable=False),
    )
    # Serves queue_sql.claim_next_job_fair: a workspace's first pending job in queue order.
    op.create_index("ix_jobs_ws_pending_order", "jobs", ["workspace_id", "number", "seq"],
                    sqlite_where=sa.text("status = 'pending'"),
                    postgresql_where=sa.text("status = 'pending'"))


def downgrade() -> None:
    op.drop_index("ix_jobs_ws_pending_order", table_name="jobs")
    op.drop_table("workspace_turns")
