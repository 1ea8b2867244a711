"""The one gate for task status changes: created -> running -> completed | failed.

Every status write goes through `transition`, which only moves a row along an edge of
`ALLOWED` (the UPDATE names the permitted source states, so a race cannot skip one).
Side effects hang off the target state: `started_at` on running, `completed_at` on the end.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import update

from opencomfy.tasks.models import Task

CREATED, RUNNING, COMPLETED, FAILED = "created", "running", "completed", "failed"
STATUSES = (CREATED, RUNNING, COMPLETED, FAILED)
TERMINAL = frozenset({COMPLETED, FAILED})

# from-state -> the states it may move to
ALLOWED: dict[str, frozenset[str]] = {
    CREATED: frozenset({RUNNING, FAILED}),
    RUNNING: frozenset({COMPLETED, FAILED}),
    COMPLETED: frozenset(),
    FAILED: frozenset(),
}


def sources_of(target: str) -> list[str]:
    """The states from which `target` may be reached."""
    return [state for state, targets in ALLOWED.items() if target in targets]


def now_ms() -> int:
    return int(time.time() * 1000)


async def transition(conn, *, task_ids: list[str] | None, to: str, **fields: Any) -> int:
    """Move tasks (all unfinished ones when `task_ids` is None) to `to`; returns rows moved."""
    if to not in STATUSES:
        raise ValueError(f"unknown task status {to!r}")
    now = now_ms()
    values: dict[str, Any] = {"status": to, "update_time": now, **fields}
    if to == RUNNING:
        values["started_at"] = now
    if to in TERMINAL:
        values["completed_at"] = now
    if to == COMPLETED:
        values["progress"] = 1.0
    stmt = update(Task).where(Task.status.in_(sources_of(to))).values(**values)
    if task_ids is not None:
        stmt = stmt.where(Task.id.in_(task_ids))
    result = await conn.execute(stmt)
    return result.rowcount
