"""SQLAlchemy 2 models. The schema itself is created by the Alembic migrations in
`migrations/versions`; these declarations mirror it for queries.

JSON payloads (prompt, extra_data, outputs, ...) are kept as JSON text, written by us: the
ComfyUI wire adapter splices the stored text into responses without decoding it again.
Times are Unix milliseconds (the jobs API speaks milliseconds).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Float, Index, Integer, String, Text, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Job(Base):
    """One submitted prompt: the queue (status pending / in_progress) and the history
    (completed / failed / cancelled) are views of this table."""

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # the prompt_id
    workspace_id: Mapped[str] = mapped_column(String(64), nullable=False)
    seq: Mapped[int] = mapped_column(BigInteger, nullable=False, unique=True)  # submit order
    number: Mapped[float] = mapped_column(Float, nullable=False)  # ComfyUI's queue priority
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    client_id: Mapped[str | None] = mapped_column(String(255))
    workflow_id: Mapped[str | None] = mapped_column(String(255))
    workflow_version_id: Mapped[str | None] = mapped_column(String(255))
    prompt: Mapped[str] = mapped_column(Text, nullable=False)
    extra_data: Mapped[str] = mapped_column(Text, nullable=False)
    sensitive: Mapped[str | None] = mapped_column(Text)  # api keys: run with, never shown
    outputs_to_execute: Mapped[str] = mapped_column(Text, nullable=False)
    create_time: Mapped[int] = mapped_column(BigInteger, nullable=False)
    update_time: Mapped[int] = mapped_column(BigInteger, nullable=False)
    # Execution
    worker_id: Mapped[str | None] = mapped_column(String(255))
    lease_expires_at: Mapped[int | None] = mapped_column(BigInteger)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    start_time: Mapped[int | None] = mapped_column(BigInteger)
    end_time: Mapped[int | None] = mapped_column(BigInteger)
    duration_ms: Mapped[int | None] = mapped_column(BigInteger)
    # Result (terminal states)
    history_seq: Mapped[int | None] = mapped_column(BigInteger)  # completion order
    outputs: Mapped[str | None] = mapped_column(Text)
    meta: Mapped[str | None] = mapped_column(Text)
    messages: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)  # the execution_error payload
    error_message: Mapped[str | None] = mapped_column(Text)
    outputs_count: Mapped[int | None] = mapped_column(Integer)
    previewable_count: Mapped[int | None] = mapped_column(Integer)
    preview_output: Mapped[str | None] = mapped_column(Text)
    output_types: Mapped[str | None] = mapped_column(String(64))  # ",image,video,"

    __table_args__ = (
        # claim_next_job, queue views: pending jobs in queue order
        Index("ix_jobs_pending_order", "number", "seq",
              sqlite_where=text("status = 'pending'"), postgresql_where=text("status = 'pending'")),
        # queue_snapshot / queue_remaining / recover: unfinished jobs of a workspace
        Index("ix_jobs_workspace_status", "workspace_id", "status"),
        # page_history: terminal jobs in completion order
        Index("ix_jobs_history", "workspace_id", "history_seq", "seq",
              sqlite_where=text("history_seq IS NOT NULL"),
              postgresql_where=text("history_seq IS NOT NULL")),
        # page_jobs sort_by=create_time
        Index("ix_jobs_workspace_create", "workspace_id", "create_time", "seq"),
        # page_jobs sort_by=execution_time
        Index("ix_jobs_workspace_duration", "workspace_id", "duration_ms"),
        # page_jobs workflow_id filter
        Index("ix_jobs_workspace_workflow", "workspace_id", "workflow_id", "create_time"),
        # fail_stalled_jobs: running jobs by lease expiry
        Index("ix_jobs_lease", "lease_expires_at",
              sqlite_where=text("status = 'in_progress'"),
              postgresql_where=text("status = 'in_progress'")),
    )


class JobCount(Base):
    """How many jobs each workspace has in each status, kept in step with every status change
    (same transaction), so queue_remaining and the jobs API's totals never count rows."""

    __tablename__ = "job_counts"

    workspace_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
