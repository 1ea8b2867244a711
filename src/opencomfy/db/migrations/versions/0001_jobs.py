"""jobs: the queue and the history in one table

Revision ID: 0001_jobs
Revises:
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0001_jobs"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("workspace_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False, unique=True),
        sa.Column("number", sa.Float, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("client_id", sa.String(255)),
        sa.Column("workflow_id", sa.String(255)),
        sa.Column("workflow_version_id", sa.String(255)),
        sa.Column("prompt", sa.Text, nullable=False),
        sa.Column("extra_data", sa.Text, nullable=False),
        sa.Column("sensitive", sa.Text),
        sa.Column("outputs_to_execute", sa.Text, nullable=False),
        sa.Column("create_time", sa.BigInteger, nullable=False),
        sa.Column("update_time", sa.BigInteger, nullable=False),
        sa.Column("worker_id", sa.String(255)),
        sa.Column("lease_expires_at", sa.BigInteger),
        sa.Column("cancel_requested", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("start_time", sa.BigInteger),
        sa.Column("end_time", sa.BigInteger),
        sa.Column("duration_ms", sa.BigInteger),
        sa.Column("history_seq", sa.BigInteger),
        sa.Column("outputs", sa.Text),
        sa.Column("meta", sa.Text),
        sa.Column("messages", sa.Text),
        sa.Column("error", sa.Text),
        sa.Column("error_message", sa.Text),
        sa.Column("outputs_count", sa.Integer),
        sa.Column("previewable_count", sa.Integer),
        sa.Column("preview_output", sa.Text),
        sa.Column("output_types", sa.String(64)),
    )
    pending = sa.text("status = 'pending'")
    running = sa.text("status = 'in_progress'")
    finished = sa.text("history_seq IS NOT NULL")
    # Serves queue_sql.claim_next_job and queue_sql.pending_jobs: pending jobs in queue order.
    op.create_index("ix_jobs_pending_order", "jobs", ["number", "seq"],
                    sqlite_where=pending, postgresql_where=pending)
    # Serves queue_sql.running_jobs, count_unfinished, recover: unfinished jobs per workspace.
    op.create_index("ix_jobs_workspace_status", "jobs", ["workspace_id", "status"])
    # Serves queue_sql.page_history_*: a workspace's terminal jobs in completion order.
    op.create_index("ix_jobs_history", "jobs", ["workspace_id", "history_seq", "seq"],
                    sqlite_where=finished, postgresql_where=finished)
    # Serves queue_sql.page_jobs with sort_by=create_time.
    op.create_index("ix_jobs_workspace_create", "jobs", ["workspace_id", "create_time", "seq"])
    # Serves queue_sql.page_jobs with sort_by=execution_time.
    op.create_index("ix_jobs_workspace_duration", "jobs", ["workspace_id", "duration_ms"])
    # Serves queue_sql.page_jobs with a workflow_id filter.
    op.create_index("ix_jobs_workspace_workflow", "jobs",
                    ["workspace_id", "workflow_id", "create_time"])
    # Serves queue_sql.find_stalled_jobs: running jobs whose lease ran out.
    op.create_index("ix_jobs_lease", "jobs", ["lease_expires_at"],
                    sqlite_where=running, postgresql_where=running)


def downgrade() -> None:
    op.drop_table("jobs")
