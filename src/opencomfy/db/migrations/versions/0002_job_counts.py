"""job_counts: per-workspace, per-status job counts kept by JobService

Revision ID: 0002_job_counts
Revises: 0001_jobs
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_job_counts"
down_revision = "0001_jobs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Serves queue_sql.count_by_status (queue_remaining, GET /jobs totals) and bump_count.
    op.create_table(
        "job_counts",
        sa.Column("workspace_id", sa.String(64), primary_key=True),
        sa.Column("status", sa.String(16), primary_key=True),
        sa.Column("n", sa.BigInteger, nullable=False, server_default="0"),
    )
    op.execute("INSERT INTO job_counts (workspace_id, status, n) "
               "SELECT workspace_id, status, count(*) FROM jobs GROUP BY workspace_id, status")


def downgrade() -> None:
    op.drop_table("job_counts")
