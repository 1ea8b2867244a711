"""Every query of the queue and the history, each named and described in one line.

The queue is the `jobs` table: pending rows in (number, seq) order are the queue, in_progress
rows are running, terminal rows with a `history_seq` are the history in completion order.
The index serving each query is named in its docstring (created in migration 0001_jobs).
Status changes are built by `transitions.transition`; the queries here only select rows for
them or change fields that are not the status.

The statements of the hot path (claim, renew, finish, count moves) are built once, with bind
parameters, so that running one costs no SQL construction or compilation, only execution.
"""

from __future__ import annotations

from typing import Iterable, Sequence

from sqlalchemy import (BigInteger, Select, and_, bindparam, case, delete, func, insert, or_, select,
                        update)
from sqlalchemy import Column, String, Table
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from opencomfy.db.models import Job, JobCount
from opencomfy.jobs import transitions as tr

JOBS: Table = Job.__table__  # type: ignore[assignment]  # declarative tables are Tables
COUNTS: Table = JobCount.__table__  # type: ignore[assignment]

# Columns of one ComfyUI history entry (the adapter splices their JSON text).
HISTORY_COLUMNS = (Job.id, Job.number, Job.status, Job.prompt, Job.extra_data,
                   Job.outputs_to_execute, Job.outputs, Job.meta, Job.messages)
# Columns of one queue tuple.
QUEUE_COLUMNS = (Job.id, Job.number, Job.prompt, Job.extra_data, Job.outputs_to_execute)
# Columns of a jobs-API list entry (no prompt, no full outputs).
JOB_LIST_COLUMNS = (Job.id, Job.status, Job.number, Job.create_time, Job.update_time,
                    Job.start_time, Job.end_time, Job.error, Job.outputs_count,
                    Job.previewable_count, Job.preview_output, Job.workflow_id,
                    Job.cancel_requested, Job.error_message)
# Columns a worker needs to run a claimed job.
CLAIM_COLUMNS = (Job.id, Job.number, Job.prompt, Job.extra_data, Job.sensitive,
                 Job.outputs_to_execute, Job.client_id, Job.workspace_id)


#: submit: insert a batch of new pending jobs (executemany in one transaction).
INSERT_JOBS = insert(JOBS)


def existing_ids(ids: Sequence[str]) -> Select:
    """submit: which of these prompt ids are already taken (duplicate check)."""
    return select(Job.id).where(Job.id.in_(ids))


def counters() -> Select:
    """start-up: the highest submit and completion numbers, to continue both sequences."""
    return select(func.max(Job.seq), func.max(Job.history_seq))


def _claim_next_job(*, skip_locked: bool):
    first = (select(JOBS.c.id).where(JOBS.c.status == tr.PENDING)
             .order_by(JOBS.c.number, JOBS.c.seq).limit(1))
    if skip_locked:  # PostgreSQL: concurrent claimers skip each other's row
        first = first.with_for_update(skip_locked=True)
    _, stmt = tr.transition(
        tr.PENDING, tr.IN_PROGRESS, where=JOBS.c.id == first.scalar_subquery(),
        worker_id=bindparam("p_worker"), lease_expires_at=bindparam("p_lease_until"),
        start_time=bindparam("p_start"), update_time=bindparam("p_now"))
    return stmt.returning(*CLAIM_COLUMNS)


#: claim_next_job: move the first pending job in queue order to in_progress under a worker's
#: lease, in one statement (ix_jobs_pending_order). Keyed by "skip locked" (PostgreSQL).
#: Parameters: p_worker, p_lease_until, p_start, p_now.
CLAIM_NEXT_JOB = {True: _claim_next_job(skip_locked=True), False: _claim_next_job(skip_locked=False)}

#: Fair sharing: when each workspace was last served a job (claim_next_job_fair's turn order).
WORKSPACE_TURNS = Table(
    "workspace_turns", Job.metadata,
    Column("workspace_id", String(64), primary_key=True),
    Column("last_claim_at", BigInteger, nullable=False),
    extend_existing=True,
)


def _claim_next_job_fair(*, skip_locked: bool):
    pending, running = COUNTS.alias("pending_n"), COUNTS.alias("running_n")
    turns = WORKSPACE_TURNS
    limit = bindparam("p_limit", type_=BigInteger)
    workspace = (
        select(pending.c.workspace_id)
        .select_from(pending
                     .outerjoin(turns, turns.c.workspace_id == pending.c.workspace_id)
                     .outerjoin(running, and_(running.c.workspace_id == pending.c.workspace_id,
                                              running.c.status == tr.IN_PROGRESS)))
        .where(pending.c.status == tr.PENDING, pending.c.n > 0,
               or_(limit == 0, func.coalesce(running.c.n, 0) < limit))
        .order_by(func.coalesce(turns.c.last_claim_at, 0), pending.c.workspace_id)
        .limit(1).scalar_subquery())
    first = (select(JOBS.c.id).where(JOBS.c.status == tr.PENDING, JOBS.c.workspace_id == workspace)
             .order_by(JOBS.c.number, JOBS.c.seq).limit(1))
    if skip_locked:
        first = first.with_for_update(skip_locked=True)
    _, stmt = tr.transition(
        tr.PENDING, tr.IN_PROGRESS, where=JOBS.c.id == first.scalar_subquery(),
        worker_id=bindparam("p_worker"), lease_expires_at=bindparam("p_lease_until"),
        start_time=bindparam("p_start"), update_time=bindparam("p_now"))
    return stmt.returning(*CLAIM_COLUMNS)


#: claim_next_job_fair: the workspace first (among those with pending jobs and fewer than
#: p_limit running, 0 = no limit: the one served longest ago, job_counts + workspace_turns),
#: then its first pending job in queue order (ix_jobs_ws_pending_order). Round-robin across
#: workspaces, priority inside each. Parameters: those of CLAIM_NEXT_JOB and p_limit.
CLAIM_NEXT_JOB_FAIR = {True: _claim_next_job_fair(skip_locked=True),
                       False: _claim_next_job_fair(skip_locked=False)}


def _take_turn(dialect: str):
    build = pg_insert if dialect == "postgresql" else sqlite_insert
    stmt = build(WORKSPACE_TURNS).values(workspace_id=bindparam("p_ws"),
                                         last_claim_at=bindparam("p_now"))
    return stmt.on_conflict_do_update(index_elements=["workspace_id"],
                                      set_={"last_claim_at": stmt.excluded.last_claim_at})


#: after a fair claim: the workspace's turn moves to the back. Parameters: p_ws, p_now.
TAKE_TURN = {"sqlite": _take_turn("sqlite"), "postgresql": _take_turn("postgresql")}

#: renew_lease: extend the lease of a running job, only for the worker holding it.
#: Parameters: p_id, p_worker, p_lease_until.
RENEW_LEASE = (update(JOBS)
               .where(JOBS.c.id == bindparam("p_id"), JOBS.c.status == tr.IN_PROGRESS,
                      JOBS.c.worker_id == bindparam("p_worker"))
               .values(lease_expires_at=bindparam("p_lease_until")))


def _finish_job(status: str):
    # The engine's execution_start timestamp when it sent one, else the claim time.
    start = func.coalesce(bindparam("p_msg_start", type_=BigInteger), JOBS.c.start_time,
                          bindparam("p_end_at", type_=BigInteger))
    duration = bindparam("p_end", type_=BigInteger) - start
    _, stmt = tr.transition(
        tr.IN_PROGRESS, status,
        where=(JOBS.c.id == bindparam("p_id")) & (JOBS.c.worker_id == bindparam("p_worker")),
        start_time=start, end_time=bindparam("p_end"),
        duration_ms=case((duration < 0, 0), else_=duration),
        history_seq=bindparam("p_history_seq"), update_time=bindparam("p_now"),
        lease_expires_at=None, outputs=bindparam("p_outputs"), meta=bindparam("p_meta"),
        messages=bindparam("p_messages"), error=bindparam("p_error"),
        error_message=bindparam("p_error_message"), outputs_count=bindparam("p_outputs_count"),
        previewable_count=bindparam("p_previewable_count"),
        preview_output=bindparam("p_preview_output"), output_types=bindparam("p_output_types"))
    return stmt.returning(JOBS.c.workspace_id)


#: finish_job: end a running job held by this worker, storing its result, keyed by the final
#: status (primary key). Returns the job's workspace. Parameters: see `_finish_job`.
FINISH_JOB = {status: _finish_job(status) for status in tr.TERMINAL}


def find_stalled_jobs(*, now: int) -> Select:
    """fail_stalled_jobs: running jobs whose lease has run out (ix_jobs_lease)."""
    return (select(Job.id, Job.workspace_id, Job.worker_id)
            .where(Job.status == tr.IN_PROGRESS, Job.lease_expires_at < now))


def running_job_ids() -> Select:
    """recover_after_restart: every job left in_progress (ix_jobs_workspace_status)."""
    return select(Job.id, Job.workspace_id, Job.start_time).where(Job.status == tr.IN_PROGRESS)


def job_state(*, prompt_id: str) -> Select:
    """finish_job / cancel: the current status, lease holder and workspace of one job."""
    return select(Job.status, Job.worker_id, Job.workspace_id, Job.cancel_requested,
                  Job.start_time, Job.create_time).where(Job.id == prompt_id)


def running_jobs(*, workspace_id: str) -> Select:
    """queue_snapshot: a workspace's running jobs as queue tuples (ix_jobs_workspace_status)."""
    return (select(*QUEUE_COLUMNS)
            .where(Job.workspace_id == workspace_id, Job.status == tr.IN_PROGRESS)
            .order_by(Job.start_time, Job.seq))


def pending_jobs(*, workspace_id: str) -> Select:
    """queue_snapshot: a workspace's pending jobs in queue order (ix_jobs_pending_order)."""
    return (select(*QUEUE_COLUMNS)
            .where(Job.status == tr.PENDING, Job.workspace_id == workspace_id)
            .order_by(Job.number, Job.seq))


def _move_count(dialect: str):
    stmt = (sqlite_insert if dialect == "sqlite" else pg_insert)(COUNTS).values(
        workspace_id=bindparam("p_ws"), status=bindparam("p_status"), n=bindparam("p_delta"))
    return stmt.on_conflict_do_update(index_elements=[COUNTS.c.workspace_id, COUNTS.c.status],
                                      set_={"n": COUNTS.c.n + stmt.excluded.n})


#: every status change: add p_delta to a workspace's count of jobs in p_status (an upsert,
#: run as executemany over the statuses that change), keyed by dialect name.
MOVE_COUNT = {"sqlite": _move_count("sqlite"), "postgresql": _move_count("postgresql")}

#: after every status change: a workspace's pending + running jobs (job_counts PK). p_ws.
#: The statuses are ORed equalities, not IN: an IN list is an "expanding" parameter that
#: SQLAlchemy re-renders into the SQL text on every execution (twice per job).
COUNT_UNFINISHED = (select(func.coalesce(func.sum(COUNTS.c.n), 0))
                    .where(COUNTS.c.workspace_id == bindparam("p_ws"),
                           or_(*(COUNTS.c.status == status for status in sorted(tr.UNFINISHED)))))


def count_by_status(*, workspace_id: str, statuses: Iterable[str] | None) -> Select:
    """queue_remaining, GET /jobs totals: a workspace's jobs in these statuses (job_counts PK)."""
    stmt = select(func.coalesce(func.sum(JobCount.n), 0)).where(JobCount.workspace_id == workspace_id)
    if statuses is not None:
        stmt = stmt.where(JobCount.status.in_(list(statuses)))
    return stmt


def count_unfinished(*, workspace_id: str) -> Select:
    """queue_remaining: pending + running jobs of a workspace (job_counts PK)."""
    return count_by_status(workspace_id=workspace_id, statuses=tr.UNFINISHED)


def finished_status_counts(*, workspace_id: str, prompt_ids: Sequence[str] | None) -> Select:
    """POST /history: how many finished jobs of each status a delete will remove."""
    stmt = (select(Job.status, func.count()).where(Job.workspace_id == workspace_id,
                                                   Job.status.in_(tr.TERMINAL))
            .group_by(Job.status))
    if prompt_ids is not None:
        stmt = stmt.where(Job.id.in_(prompt_ids))
    return stmt


def running_ids(*, workspace_id: str, prompt_id: str | None) -> Select:
    """request_interrupt: the running jobs to stop (one, or all of the workspace's)."""
    stmt = select(Job.id).where(Job.workspace_id == workspace_id, Job.status == tr.IN_PROGRESS)
    if prompt_id is not None:
        stmt = stmt.where(Job.id == prompt_id)
    return stmt


def mark_cancel_requested(*, workspace_id: str, prompt_ids: Sequence[str]):
    """cancel / interrupt: flag running jobs as cancelling (not a status change)."""
    return (update(Job)
            .where(Job.workspace_id == workspace_id, Job.id.in_(prompt_ids),
                   Job.status == tr.IN_PROGRESS)
            .values(cancel_requested=True))


def pending_ids(*, workspace_id: str, prompt_ids: Iterable[str] | None) -> Select:
    """delete_pending / clear_pending / cancel: pending jobs to take off the queue."""
    stmt = select(Job.id).where(Job.status == tr.PENDING, Job.workspace_id == workspace_id)
    if prompt_ids is not None:
        stmt = stmt.where(Job.id.in_(list(prompt_ids)))
    return stmt


def history_rows_newest(*, workspace_id: str, limit: int) -> Select:
    """page_history (offset < 0): the newest `limit` finished jobs, newest first (ix_jobs_history)."""
    return (select(*HISTORY_COLUMNS)
            .where(Job.workspace_id == workspace_id, Job.history_seq.is_not(None))
            .order_by(Job.history_seq.desc(), Job.seq.desc()).limit(limit))


def history_rows_from(*, workspace_id: str, offset: int, limit: int | None) -> Select:
    """page_history (offset >= 0): finished jobs oldest first, from `offset` (ix_jobs_history)."""
    stmt = (select(*HISTORY_COLUMNS)
            .where(Job.workspace_id == workspace_id, Job.history_seq.is_not(None))
            .order_by(Job.history_seq, Job.seq).offset(offset))
    return stmt.limit(limit) if limit is not None else stmt


def history_rows_desc(*, workspace_id: str, offset: int, limit: int | None) -> Select:
    """history_v2: finished jobs newest first, from `offset` (ix_jobs_history)."""
    stmt = (select(*HISTORY_COLUMNS, Job.create_time, Job.workflow_id)
            .where(Job.workspace_id == workspace_id, Job.history_seq.is_not(None))
            .order_by(Job.history_seq.desc(), Job.seq.desc()).offset(offset))
    return stmt.limit(limit) if limit is not None else stmt


def history_row(*, workspace_id: str, prompt_id: str) -> Select:
    """history entry: one finished job (primary key)."""
    return (select(*HISTORY_COLUMNS, Job.create_time, Job.workflow_id)
            .where(Job.id == prompt_id, Job.workspace_id == workspace_id,
                   Job.history_seq.is_not(None)))


def delete_history(*, workspace_id: str, prompt_ids: Sequence[str] | None):
    """POST /history: forget finished jobs (some, or all of the workspace's)."""
    stmt = delete(Job).where(Job.workspace_id == workspace_id, Job.status.in_(tr.TERMINAL))
    if prompt_ids is not None:
        stmt = stmt.where(Job.id.in_(prompt_ids))
    return stmt


def _jobs_filter(*, workspace_id: str, statuses: Sequence[str] | None,
                 workflow_id: str | None, output_type: str | None):
    conds = [Job.workspace_id == workspace_id]
    if statuses:
        conds.append(Job.status.in_(statuses))
    if workflow_id is not None:
        conds.append(Job.workflow_id == workflow_id)
    if output_type is not None:
        conds.append(Job.output_types.contains(f",{output_type},"))
    return and_(*conds)


def page_jobs(*, workspace_id: str, statuses: Sequence[str] | None, workflow_id: str | None,
              output_type: str | None, sort_by: str, descending: bool,
              offset: int, limit: int) -> Select:
    """GET /jobs: one page of a workspace's jobs, filtered and sorted
    (ix_jobs_workspace_create / ix_jobs_workspace_duration / ix_jobs_workspace_workflow)."""
    key = (Job.duration_ms, Job.seq) if sort_by == "execution_time" else (Job.create_time, Job.seq)
    order = [k.desc() for k in key] if descending else list(key)
    return (select(*JOB_LIST_COLUMNS)
            .where(_jobs_filter(workspace_id=workspace_id, statuses=statuses,
                                workflow_id=workflow_id, output_type=output_type))
            .order_by(*order).offset(offset).limit(limit))


def count_jobs(*, workspace_id: str, statuses: Sequence[str] | None, workflow_id: str | None,
               output_type: str | None) -> Select:
    """GET /jobs: how many jobs match the filters (pagination total)."""
    return (select(func.count()).select_from(Job)
            .where(_jobs_filter(workspace_id=workspace_id, statuses=statuses,
                                workflow_id=workflow_id, output_type=output_type)))


def job_detail(*, workspace_id: str, prompt_id: str) -> Select:
    """GET /jobs/{id}, /job/{id}/status: everything about one job (primary key)."""
    return (select(*JOB_LIST_COLUMNS, Job.prompt, Job.extra_data, Job.outputs_to_execute,
                   Job.outputs, Job.meta, Job.messages)
            .where(Job.id == prompt_id, Job.workspace_id == workspace_id))
