"""The job state machine: the one table of allowed status changes.

    pending -> in_progress -> completed | failed | cancelled
    pending -> cancelled

Every status change of a job is a conditional UPDATE built here (`... WHERE status = <from>`),
so a change that lost a race (the job was cancelled while a worker claimed it) updates no row
instead of overwriting a newer state. The change is committed by the caller before anything
is announced on the bus; the edge's `announce_queue` says whether the queue view changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, Update, update

from opencomfy.db.models import Job

PENDING = "pending"
IN_PROGRESS = "in_progress"
COMPLETED = "completed"
FAILED = "failed"
CANCELLED = "cancelled"

STATUSES = (PENDING, IN_PROGRESS, COMPLETED, FAILED, CANCELLED)
TERMINAL = frozenset({COMPLETED, FAILED, CANCELLED})
UNFINISHED = frozenset({PENDING, IN_PROGRESS})


@dataclass(frozen=True)
class Edge:
    """One allowed status change and its side effects."""

    source: str
    target: str
    #: The job leaves or enters the queue: announce `queue_changed` after the commit.
    announce_queue: bool = True
    #: The job becomes history: it gets a completion number and an end time.
    ends_job: bool = False


EDGES: dict[tuple[str, str], Edge] = {
    (e.source, e.target): e
    for e in (
        Edge(PENDING, IN_PROGRESS),
        Edge(PENDING, CANCELLED, ends_job=True),
        Edge(IN_PROGRESS, COMPLETED, ends_job=True),
        Edge(IN_PROGRESS, FAILED, ends_job=True),
        Edge(IN_PROGRESS, CANCELLED, ends_job=True),
    )
}


class InvalidTransition(ValueError):
    """A status change the state machine does not allow."""


def edge(source: str, target: str) -> Edge:
    """The edge from `source` to `target`, or InvalidTransition."""
    try:
        return EDGES[(source, target)]
    except KeyError:
        raise InvalidTransition(f"a job cannot go from {source} to {target}") from None


def transition(source: str, target: str, *, where: Any = None, **values: Any) -> tuple[Edge, Update]:
    """The conditional UPDATE moving jobs from `source` to `target` (plus `values`).

    `where` narrows the rows (a job id, a worker's lease...). The statement matches only rows
    still in `source`, so concurrent changes cannot be overwritten. Ending edges need
    `history_seq` and `end_time` among `values` (the history's completion order).
    """
    found = edge(source, target)
    if found.ends_job and ("history_seq" not in values or "end_time" not in values):
        raise InvalidTransition(f"{source} -> {target} ends the job: history_seq and end_time are required")
    jobs: Table = Job.__table__  # type: ignore[assignment]  # declarative tables are Tables
    stmt = update(jobs).where(jobs.c.status == source)
    if where is not None:
        stmt = stmt.where(where)
    return found, stmt.values(status=target, **values)
