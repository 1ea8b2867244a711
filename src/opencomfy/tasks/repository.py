"""Queries on the `tasks` table (each tenant-owned one takes the workspace id)."""

from __future__ import annotations

from typing import Any, Sequence

from sqlalchemy import func, insert, select, update

from opencomfy.tasks.models import Task
from opencomfy.tasks.transitions import RUNNING, TERMINAL

COLUMNS = Task.__table__.c


async def insert_task(conn, row: dict[str, Any]) -> None:
    await conn.execute(insert(Task).values(**row))


async def get_task(conn, *, workspace_id: str, task_id: str) -> dict | None:
    row = (await conn.execute(select(Task.__table__).where(
        COLUMNS.id == task_id, COLUMNS.workspace_id == workspace_id))).mappings().first()
    return dict(row) if row else None


async def find_active_by_key(conn, *, workspace_id: str, task_name: str,
                             idempotency_key: str) -> dict | None:
    """An unfinished task with this key (a repeated request joins it instead of starting another)."""
    row = (await conn.execute(select(Task.__table__).where(
        COLUMNS.workspace_id == workspace_id, COLUMNS.task_name == task_name,
        COLUMNS.idempotency_key == idempotency_key,
        COLUMNS.status.not_in(list(TERMINAL))).limit(1))).mappings().first()
    return dict(row) if row else None


async def set_progress(conn, *, task_id: str, progress: float, result: dict | None) -> None:
    values: dict[str, Any] = {"progress": progress}
    if result is not None:
        values["result"] = result
    await conn.execute(update(Task).where(COLUMNS.id == task_id, COLUMNS.status == RUNNING)
                       .values(**values))


async def page_tasks(conn, *, workspace_id: str, task_name: str | None, idempotency_key: str | None,
                     statuses: Sequence[str] | None, created_after: int | None,
                     created_before: int | None, ascending: bool, offset: int,
                     limit: int) -> tuple[list[dict], int]:
    """One page of a workspace's tasks by create_time, and the total matching the filters."""
    where = [COLUMNS.workspace_id == workspace_id]
    if task_name:
        where.append(COLUMNS.task_name == task_name)
    if idempotency_key:
        where.append(COLUMNS.idempotency_key == idempotency_key)
    if statuses:
        where.append(COLUMNS.status.in_(list(statuses)))
    if created_after is not None:
        where.append(COLUMNS.create_time > created_after)
    if created_before is not None:
        where.append(COLUMNS.create_time < created_before)
    order = (COLUMNS.create_time.asc(), COLUMNS.id.asc()) if ascending else (
        COLUMNS.create_time.desc(), COLUMNS.id.desc())
    rows = (await conn.execute(select(Task.__table__).where(*where).order_by(*order)
                               .offset(offset).limit(limit))).mappings().all()
    total = (await conn.execute(select(func.count()).select_from(Task).where(*where))).scalar_one()
    return [dict(r) for r in rows], total
