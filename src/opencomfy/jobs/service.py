"""JobService: the queue, the history and the worker interface over the `jobs` table.

Call it on the server's event loop (the embedded worker hops there through worker_api).
Every status change goes through `transitions`, updates `job_counts` in the same
transaction, is committed, and only then announced on the bus (`queue_changed`,
`interrupt`). Submits that arrive together are written in one transaction (group commit),
so a burst of prompts costs one commit, not one per prompt.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from typing import Any, Sequence

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from opencomfy.db.database import Database
from opencomfy.events.base import BusMessage, EventBus
from opencomfy.identity.scoped_ids import scoped_id
from opencomfy.jobs import comfy_format, queue_sql as q
from opencomfy.jobs import transitions as tr
from opencomfy.jobs.records import (SENSITIVE_EXTRA_DATA_KEYS, ClaimedJob, DuplicatePromptId,
                                    JobNotFound, SubmittedJob)
from opencomfy.jobs.reads import JobReads
from opencomfy.jobs.submit_batch import SubmitBatcher

log = logging.getLogger(__name__)

RESTART_REASON = "server stopped while the job was running"
STALLED_REASON = "the worker running the job stopped responding (its lease expired)"
REAPER_INTERVAL_S = 5.0


def now_ms() -> int:
    return int(time.time() * 1000)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)


def _claimed_job(row: Any) -> ClaimedJob:
    """A claimed row (CLAIM_COLUMNS) as the worker's job, its secrets merged back."""
    extra = json.loads(row.extra_data)
    if row.sensitive:
        extra.update(json.loads(row.sensitive))
    return ClaimedJob(prompt_id=row.id, number=row.number, prompt=json.loads(row.prompt),
                      extra_data=extra, outputs_to_execute=json.loads(row.outputs_to_execute),
                      client_id=row.client_id, workspace_id=row.workspace_id)


class JobService(JobReads):
    """Jobs of every workspace: submit, queue views, control, history, and the worker side."""

    def __init__(self, *, db: Database, bus: EventBus, workspace_concurrency: int = 0) -> None:
        self.db = db
        self.bus = bus
        # Fair sharing: at most this many running jobs per workspace (0: no limit).
        self.workspace_concurrency = max(0, int(workspace_concurrency))
        self._seq: int | None = None  # last submit number handed out
        self._history_seq = 0  # last completion number handed out
        self._counters_lock = asyncio.Lock()
        self._batcher = SubmitBatcher(write=self._write_batch)
        self._reaper: asyncio.Task | None = None

    # ----------------------------------------------------------------------------- lifetime

    async def recover_after_restart(self) -> list[str]:
        """At start: fail jobs a dead process left running (pending ones stay queued), and
        start the reaper of stalled leases. Returns the ids of the jobs failed."""
        await self._load_counters()
        async with self.db.read() as conn:
            rows = (await conn.execute(q.running_job_ids())).all()
        failed = [r.id for r in rows
                  if await self._fail_running(prompt_id=r.id, worker_id=None, reason=RESTART_REASON)]
        if failed:
            log.warning("marked %d interrupted job(s) failed: %s", len(failed), RESTART_REASON)
        if self._reaper is None:
            self._reaper = asyncio.get_running_loop().create_task(self._reap_forever())
        return failed

    async def close(self) -> None:
        """Write any submit still waiting for its commit and stop the reaper."""
        await self._batcher.drain()
        if self._reaper is not None:
            self._reaper.cancel()
            try:
                await self._reaper
            except asyncio.CancelledError:
                pass
            self._reaper = None

    async def _load_counters(self) -> None:
        async with self._counters_lock:
            if self._seq is not None:
                return
            async with self.db.read() as conn:
                max_seq, max_hist = (await conn.execute(q.counters())).one()
            self._seq = -1 if max_seq is None else int(max_seq)
            self._history_seq = int(max_hist or 0)

    def _next_history_seq(self) -> int:
        self._history_seq += 1
        return self._history_seq

    # ------------------------------------------------------------- counts, in transactions

    def _move(self, conn: Connection, workspace_id: str, moves: dict[str, int]) -> int:
        """Apply count changes for one workspace; returns its queue_remaining afterwards."""
        changes = [{"p_ws": workspace_id, "p_status": status, "p_delta": delta}
                   for status, delta in moves.items() if delta]
        if changes:
            conn.execute(q.MOVE_COUNT[self.db.dialect], changes)
        return int(conn.execute(q.COUNT_UNFINISHED, {"p_ws": workspace_id}).scalar_one())

    # ------------------------------------------------------------------------------ submit

    async def submit(self, *, workspace_id: str, prompt: dict, outputs_to_execute: Sequence[str],
                     prompt_id: str | None = None, number: float | None = None,
                     front: bool = False, extra_data: dict | None = None,
                     client_id: str | None = None, workflow_id: str | None = None,
                     workflow_version_id: str | None = None) -> SubmittedJob:
        """Queue a validated prompt; returns once the job is committed.

        `number` (ComfyUI's priority) defaults to the submit counter, negated with `front`.
        `client_id` goes into extra_data, as does `create_time` (ms). Raises DuplicatePromptId.
        """
        if self._seq is None:
            await self._load_counters()
        seq = self._seq = (-1 if self._seq is None else self._seq) + 1  # loaded above
        if number is None:
            number = -seq if front else seq
        # Only an id chosen by the client can already exist; ours are fresh uuid4s. A chosen id
        # is named inside its workspace (identity/scoped_ids.py): another workspace's job with
        # that id must not make this answer differ from the one for an unused id.
        check_duplicate = prompt_id is not None
        prompt_id = scoped_id(workspace_id, prompt_id) if prompt_id else str(uuid.uuid4())
        extra = dict(extra_data or {})
        if client_id is not None:
            extra["client_id"] = client_id
        sensitive = {k: extra.pop(k) for k in SENSITIVE_EXTRA_DATA_KEYS if k in extra}
        created = now_ms()
        extra["create_time"] = created
        if workflow_id is None:
            workflow_id = comfy_format.workflow_id_of(extra)
        owner = extra.get("client_id")
        row = dict(
            id=prompt_id, workspace_id=workspace_id, seq=seq, number=float(number),
            status=tr.PENDING,
            client_id=owner if isinstance(owner, str) and len(owner) <= 255 else None,
            workflow_id=workflow_id, workflow_version_id=workflow_version_id,
            prompt=_dumps(prompt), extra_data=_dumps(extra),
            sensitive=_dumps(sensitive) if sensitive else None,
            outputs_to_execute=_dumps(list(outputs_to_execute)),
            create_time=created, update_time=created, cancel_requested=False,
        )
        await self._batcher.submit((row, check_duplicate))
        return SubmittedJob(prompt_id=prompt_id, number=number)

    async def _write_batch(self, items: list[tuple[dict, bool]]) -> list[BaseException | None]:
        """Insert a batch in one transaction; per-row errors (duplicates) come back in order."""
        try:
            results, remaining = await self._insert_rows(items)
        except IntegrityError:
            # Another process took an id between our check and the insert: one by one.
            results, remaining = [], {}
            for row, _ in items:
                try:
                    (error,), counts = await self._insert_rows([(row, True)])
                except IntegrityError:
                    error, counts = DuplicatePromptId(f"prompt_id {row['id']} already exists"), {}
                results.append(error)
                remaining.update(counts)
        for ws, n in remaining.items():
            self._announce_queue(ws, n)
        return results

    async def _insert_rows(self, items: list[tuple[dict, bool]]
                           ) -> tuple[list[BaseException | None], dict[str, int]]:
        """One transaction: refuse taken ids, insert the rest, count each workspace's queue."""

        def insert(conn: Connection):
            results: list[BaseException | None] = [None] * len(items)
            chosen = [row["id"] for row, check in items if check]
            taken = set(conn.execute(q.existing_ids(chosen)).scalars()) if chosen else set()
            fresh: list[dict] = []
            for i, (row, _) in enumerate(items):
                if row["id"] in taken:
                    results[i] = DuplicatePromptId(f"prompt_id {row['id']} already exists")
                else:
                    taken.add(row["id"])
                    fresh.append(row)
            remaining = {}
            if fresh:
                conn.execute(q.INSERT_JOBS, fresh)
                per_workspace: dict[str, int] = {}
                for r in fresh:
                    per_workspace[r["workspace_id"]] = per_workspace.get(r["workspace_id"], 0) + 1
                for ws, n in per_workspace.items():
                    remaining[ws] = self._move(conn, ws, {tr.PENDING: n})
            return results, remaining

        return await self.db.run_write(insert)

    # ---------------------------------------------------------------------------- control

    async def delete_pending(self, *, workspace_id: str, prompt_ids: Sequence[str]) -> list[str]:
        """Take these pending jobs off the queue (they end cancelled). Returns those taken."""
        if not prompt_ids:
            return []
        return await self._cancel_pending(workspace_id=workspace_id, prompt_ids=list(prompt_ids))

    async def clear_pending(self, *, workspace_id: str) -> list[str]:
        """Take every pending job of the workspace off the queue."""
        return await self._cancel_pending(workspace_id=workspace_id, prompt_ids=None)

    async def _cancel_pending(self, *, workspace_id: str, prompt_ids: list[str] | None) -> list[str]:
        now = now_ms()
        messages = [["execution_interrupted", {"prompt_id": None, "node_id": None, "node_type": None,
                                               "executed": [], "timestamp": now}]]

        def cancel(conn: Connection):
            ids = list(conn.execute(q.pending_ids(workspace_id=workspace_id,
                                                  prompt_ids=prompt_ids)).scalars())
            if not ids:
                return ids, 0
            _, stmt = tr.transition(
                tr.PENDING, tr.CANCELLED, where=q.JOBS.c.id.in_(ids),
                history_seq=self._next_history_seq(), end_time=now, update_time=now,
                outputs="{}", meta="{}", messages=_dumps(messages),
                error_message="cancelled before it started", outputs_count=0,
                previewable_count=0, output_types=",")
            moved = conn.execute(stmt).rowcount
            return ids, self._move(conn, workspace_id, {tr.PENDING: -moved, tr.CANCELLED: moved})

        ids, remaining = await self.db.run_write(cancel, bulk=prompt_ids is None)
        if ids:
            self._announce_queue(workspace_id, remaining)
        return ids

    async def request_interrupt(self, *, workspace_id: str, prompt_id: str | None = None) -> list[str]:
        """Stop running jobs: the one named (only if it is running) or all of the workspace's.
        They end cancelled once the engine reports the interruption. Returns their ids."""

        def mark(conn: Connection) -> list[str]:
            ids = list(conn.execute(q.running_ids(workspace_id=workspace_id,
                                                  prompt_id=prompt_id)).scalars())
            if ids:
                conn.execute(q.mark_cancel_requested(workspace_id=workspace_id, prompt_ids=ids))
            return ids

        ids = await self.db.run_write(mark)
        for job_id in ids:
            self.bus.publish(BusMessage(kind="interrupt", data={"prompt_id": job_id},
                                        workspace_id=workspace_id, prompt_id=job_id))
        return ids

    async def cancel(self, *, workspace_id: str, job_id: str) -> bool:
        """Cancel one job, idempotently: True when this call cancelled it (pending) or asked the
        worker to stop it (running); False when it had ended or was already cancelling.
        Raises JobNotFound."""
        for _ in range(3):  # a pending job may be claimed between our read and our update
            async with self.db.read() as conn:
                state = (await conn.execute(q.job_state(prompt_id=job_id))).first()
            if state is None or state.workspace_id != workspace_id:
                raise JobNotFound(job_id)
            if state.status == tr.PENDING:
                if await self._cancel_pending(workspace_id=workspace_id, prompt_ids=[job_id]):
                    return True
                continue
            if state.status == tr.IN_PROGRESS and not state.cancel_requested:
                return bool(await self.request_interrupt(workspace_id=workspace_id, prompt_id=job_id))
            return False
        return False

    def request_free(self, *, workspace_id: str = "local", unload_models: bool = False,
                     free_memory: bool = False) -> None:
        """Ask the worker to drop this workspace's caches after the current job, and to unload
        models / free memory once no other workspace's job is about to run (/api/free)."""
        self.bus.publish(BusMessage(kind="free", data={"unload_models": bool(unload_models),
                                                       "free_memory": bool(free_memory)},
                                    workspace_id=workspace_id))

    async def delete_history(self, *, workspace_id: str, prompt_ids: Sequence[str] | None) -> int:
        """Forget finished jobs (these ids, or all with None). Queued jobs are untouched."""
        ids = None if prompt_ids is None else list(prompt_ids)

        def forget(conn: Connection) -> int:
            by_status = dict(conn.execute(q.finished_status_counts(
                workspace_id=workspace_id, prompt_ids=ids)).all())
            deleted = conn.execute(q.delete_history(workspace_id=workspace_id, prompt_ids=ids)).rowcount
            self._move(conn, workspace_id, {status: -n for status, n in by_status.items()})
            return int(deleted or 0)

        return await self.db.run_write(forget, bulk=True)

    # ------------------------------------------------------------------- worker interface

    async def claim_next_job(self, *, worker_id: str, lease_seconds: float) -> ClaimedJob | None:
        """Take the next pending job under a lease (round-robin across workspaces, queue order
        inside each, under the per-workspace limit); None when none may run."""
        stmt, params = self._claim_statement(worker_id=worker_id, lease_seconds=lease_seconds)

        def claim(conn: Connection):
            row = conn.execute(stmt, params).first()
            if row is None:
                return None, 0
            conn.execute(q.TAKE_TURN[self.db.dialect], {"p_ws": row.workspace_id, "p_now": params["p_now"]})
            return row, self._move(conn, row.workspace_id, {tr.PENDING: -1, tr.IN_PROGRESS: 1})

        row, remaining = await self.db.run_write(claim)
        if row is None:
            return None
        self._announce_queue(row.workspace_id, remaining)
        return _claimed_job(row)

    def _claim_statement(self, *, worker_id: str, lease_seconds: float):
        now = now_ms()
        return q.CLAIM_NEXT_JOB_FAIR[not self.db.is_sqlite], {
            "p_worker": worker_id, "p_lease_until": now + int(lease_seconds * 1000),
            "p_start": now, "p_now": now, "p_limit": self.workspace_concurrency}

    async def renew_lease(self, *, prompt_id: str, worker_id: str, lease_seconds: float) -> bool:
        """Extend a running job's lease; False when the job is no longer this worker's."""
        until = now_ms() + int(lease_seconds * 1000)
        params = {"p_id": prompt_id, "p_worker": worker_id, "p_lease_until": until}
        return await self.db.run_write(lambda conn: conn.execute(q.RENEW_LEASE, params).rowcount == 1)

    async def finish_job(self, *, prompt_id: str, worker_id: str, status: str,
                         outputs: dict | None = None, meta: dict | None = None,
                         messages: Sequence | None = None, error: dict | None = None) -> bool:
        """Store a running job's result and end it (completed | failed | cancelled).
        False when the job was no longer this worker's (failed as stalled, or after a restart)."""
        params = self._finish_params(prompt_id=prompt_id, worker_id=worker_id, status=status,
                                     outputs=outputs, meta=meta, messages=messages, error=error)

        def finish(conn: Connection):
            row = conn.execute(q.FINISH_JOB[status],
                               {**params, "p_history_seq": self._next_history_seq()}).first()
            if row is None:
                return None, 0
            return row.workspace_id, self._move(conn, row.workspace_id,
                                                {tr.IN_PROGRESS: -1, status: 1})

        workspace_id, remaining = await self.db.run_write(finish)
        if workspace_id is None:
            log.warning("job %s finished by %s, but it is no longer theirs", prompt_id, worker_id)
            return False
        self._announce_queue(workspace_id, remaining)
        return True

    async def finish_job_and_claim_next(self, *, prompt_id: str, worker_id: str, status: str,
                                        lease_seconds: float, outputs: dict | None = None,
                                        meta: dict | None = None, messages: Sequence | None = None,
                                        error: dict | None = None
                                        ) -> tuple[bool, ClaimedJob | None]:
        """`finish_job`, then `claim_next_job`, in one transaction (one commit between two
        jobs instead of two). Returns (finished, next job or None). Should that transaction
        fail, the two run apart, so a failed claim never costs the stored end."""
        params = self._finish_params(prompt_id=prompt_id, worker_id=worker_id, status=status,
                                     outputs=outputs, meta=meta, messages=messages, error=error)
        claim_stmt, claim_params = self._claim_statement(worker_id=worker_id,
                                                         lease_seconds=lease_seconds)

        def finish_and_claim(conn: Connection):
            remaining: dict[str, int] = {}
            finished = conn.execute(q.FINISH_JOB[status],
                                    {**params, "p_history_seq": self._next_history_seq()}).first()
            if finished is not None:
                # Counted before the claim: the fair claim reads the running counts.
                remaining[finished.workspace_id] = self._move(
                    conn, finished.workspace_id, {tr.IN_PROGRESS: -1, status: 1})
            claimed = conn.execute(claim_stmt, claim_params).first()
            if claimed is not None:
                conn.execute(q.TAKE_TURN[self.db.dialect],
                             {"p_ws": claimed.workspace_id, "p_now": claim_params["p_now"]})
                remaining[claimed.workspace_id] = self._move(
                    conn, claimed.workspace_id, {tr.PENDING: -1, tr.IN_PROGRESS: 1})
            return finished is not None, claimed, remaining

        try:
            finished, claimed, remaining = await self.db.run_write(finish_and_claim)
        except Exception:
            log.warning("finishing %s and claiming the next job together failed; one by one",
                        prompt_id, exc_info=True)
            if not await self.finish_job(prompt_id=prompt_id, worker_id=worker_id, status=status,
                                         outputs=outputs, meta=meta, messages=messages, error=error):
                return False, None
            try:
                return True, await self.claim_next_job(worker_id=worker_id,
                                                       lease_seconds=lease_seconds)
            except Exception:  # the outcome is stored; the worker claims again on its own
                log.exception("claiming the next job after %s failed", prompt_id)
                return True, None
        if not finished:
            log.warning("job %s finished by %s, but it is no longer theirs", prompt_id, worker_id)
        for workspace_id, count in remaining.items():
            self._announce_queue(workspace_id, count)
        return finished, _claimed_job(claimed) if claimed is not None else None

    def _finish_params(self, *, prompt_id: str, worker_id: str, status: str, outputs: dict | None,
                       meta: dict | None, messages: Sequence | None, error: dict | None) -> dict:
        """FINISH_JOB's parameters (all but p_history_seq, handed out in the transaction)."""
        if status not in tr.TERMINAL:
            raise tr.InvalidTransition(f"a job cannot finish as {status}")
        outputs = outputs or {}
        messages = [list(m) for m in (messages or [])]
        now = now_ms()
        summary = comfy_format.summarize_outputs(outputs)
        error_message = None
        if status == tr.FAILED:
            error_message = (error or {}).get("exception_message") or "the job failed"
        elif status == tr.CANCELLED:
            error_message = "interrupted"
        params = {
            "p_id": prompt_id, "p_worker": worker_id, "p_now": now, "p_end_at": now,
            "p_msg_start": comfy_format.message_time(messages, ("execution_start",)),
            # The engine's own end timestamp when it sent one, else now.
            "p_end": comfy_format.message_time(messages, comfy_format.END_EVENTS, last=True) or now,
            "p_outputs": _dumps(outputs), "p_meta": _dumps(meta or {}),
            "p_messages": _dumps(messages), "p_error": _dumps(error) if error else None,
            "p_error_message": error_message, "p_outputs_count": summary.count,
            "p_previewable_count": summary.previewable,
            "p_preview_output": _dumps(summary.preview) if summary.preview else None,
            "p_output_types": "," + ",".join(sorted(summary.media_types)) + ",",
        }
        return params

    async def fail_stalled_jobs(self) -> list[str]:
        """Fail running jobs whose lease expired (their worker died or hung). Returns their ids."""
        async with self.db.read() as conn:
            rows = (await conn.execute(q.find_stalled_jobs(now=now_ms()))).all()
        return [r.id for r in rows
                if await self._fail_running(prompt_id=r.id, worker_id=r.worker_id, reason=STALLED_REASON)]

    async def _fail_running(self, *, prompt_id: str, worker_id: str | None, reason: str) -> bool:
        now = now_ms()
        error = comfy_format.synthetic_error(prompt_id=prompt_id, message=reason, timestamp=now)
        jobs = q.JOBS.c
        where = jobs.id == prompt_id
        if worker_id is not None:  # a renewed lease or a finish since we looked wins
            where = where & (jobs.worker_id == worker_id) & (jobs.lease_expires_at < now)

        def fail(conn: Connection):
            state = conn.execute(q.job_state(prompt_id=prompt_id)).first()
            if state is None:
                return None, 0
            _, stmt = tr.transition(
                tr.IN_PROGRESS, tr.FAILED, where=where, history_seq=self._next_history_seq(),
                end_time=now, update_time=now, lease_expires_at=None,
                duration_ms=max(0, now - (state.start_time or now)),
                outputs="{}", meta="{}", messages=_dumps([["execution_error", error]]),
                error=_dumps(error), error_message=reason, outputs_count=0, previewable_count=0,
                output_types=",")
            if conn.execute(stmt).rowcount != 1:
                return None, 0
            return state.workspace_id, self._move(conn, state.workspace_id,
                                                  {tr.IN_PROGRESS: -1, tr.FAILED: 1})

        workspace_id, remaining = await self.db.run_write(fail)
        if workspace_id is None:
            return False
        self._announce_queue(workspace_id, remaining)
        return True

    async def _reap_forever(self) -> None:
        while True:
            await asyncio.sleep(REAPER_INTERVAL_S)
            try:
                failed = await self.fail_stalled_jobs()
                if failed:
                    log.warning("failed %d stalled job(s): %s", len(failed), ", ".join(failed))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("stalled-job check failed")

    # ------------------------------------------------------------------------ announcing

    def _announce_queue(self, workspace_id: str, queue_remaining: int) -> None:
        self.bus.publish(BusMessage(kind="queue_changed", data={"queue_remaining": queue_remaining},
                                    workspace_id=workspace_id))
