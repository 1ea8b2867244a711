"""The `tasks` table: every background task (download, export, seed, ...) as one row."""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Float, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from opencomfy.db.models import Base


class Task(Base):
    """A background task; status moves created -> running -> completed | failed
    (only through `opencomfy.tasks.transitions`). Times are Unix milliseconds."""

    __tablename__ = "tasks"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(String(64), nullable=False)
    task_name: Mapped[str] = mapped_column(String(64), nullable=False)
    idempotency_key: Mapped[str] = mapped_column(String(255), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    payload: Mapped[dict] = mapped_column(JSON, nullable=False, default=dict)
    result: Mapped[dict | None] = mapped_column(JSON)
    error_message: Mapped[str | None] = mapped_column(Text)
    progress: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    create_time: Mapped[int] = mapped_column(BigInteger, nullable=False)
    update_time: Mapped[int] = mapped_column(BigInteger, nullable=False)
    started_at: Mapped[int | None] = mapped_column(BigInteger)
    completed_at: Mapped[int | None] = mapped_column(BigInteger)

    __table_args__ = (
        Index("ix_tasks_ws_create", "workspace_id", "create_time"),
        Index("ix_tasks_ws_name_key", "workspace_id", "task_name", "idempotency_key"),
        Index("ix_tasks_status", "status"),
    )
