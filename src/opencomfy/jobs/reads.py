"""The read side of JobService: queue views, history windows and the jobs listing.

Every page is cut in the database (LIMIT/OFFSET on an index); totals come from the
`job_counts` table instead of counting rows. Rows are returned as they come from
`queue_sql`; the ComfyUI adapter (`comfy_format`) renders them.
"""

from __future__ import annotations

from typing import Any, Sequence

from opencomfy.db.database import Database
from opencomfy.jobs import queue_sql as q
from opencomfy.jobs.records import JobNotFound, JobPage


class JobReads:
    """Read-only queries over the jobs table (mixed into JobService)."""

    db: Database

    async def queue_snapshot(self, *, workspace_id: str) -> tuple[list, list]:
        """(running rows, pending rows in queue order) of a workspace."""
        async with self.db.read() as conn:
            running = list((await conn.execute(q.running_jobs(workspace_id=workspace_id))).all())
            pending = list((await conn.execute(q.pending_jobs(workspace_id=workspace_id))).all())
        return running, pending

    async def queue_remaining(self, *, workspace_id: str) -> int:
        """Pending plus running jobs of a workspace (ComfyUI's `queue_remaining`)."""
        async with self.db.read() as conn:
            return int((await conn.execute(q.count_unfinished(workspace_id=workspace_id))).scalar_one())

    async def history_page(self, *, workspace_id: str, max_items: int | None,
                           offset: int | None) -> list:
        """Finished jobs in completion order, windowed exactly as ComfyUI's get_history:
        offset < 0 with max_items means the newest max_items; its max_items <= 0 quirks kept."""
        offset = -1 if offset is None else offset
        async with self.db.read() as conn:
            if offset < 0 and max_items is not None:
                if max_items <= 0:
                    return []
                rows = list((await conn.execute(q.history_rows_newest(
                    workspace_id=workspace_id, limit=max_items))).all())
                rows.reverse()
                return rows
            # ComfyUI adds an item before checking the count, so max_items <= 0 yields one.
            limit = None if max_items is None else max(max_items, 1)
            return list((await conn.execute(q.history_rows_from(
                workspace_id=workspace_id, offset=max(offset, 0), limit=limit))).all())

    async def history_page_newest_first(self, *, workspace_id: str, offset: int,
                                        limit: int | None) -> list:
        """Finished jobs newest first (history_v2)."""
        async with self.db.read() as conn:
            return list((await conn.execute(q.history_rows_desc(
                workspace_id=workspace_id, offset=offset, limit=limit))).all())

    async def history_entry(self, *, workspace_id: str, prompt_id: str):
        """One finished job's history row, or None."""
        async with self.db.read() as conn:
            return (await conn.execute(q.history_row(
                workspace_id=workspace_id, prompt_id=prompt_id))).first()

    async def list_jobs(self, *, workspace_id: str, statuses: Sequence[str] | None = None,
                        workflow_id: str | None = None, output_type: str | None = None,
                        sort_by: str = "create_time", descending: bool = True,
                        offset: int = 0, limit: int = 100) -> JobPage:
        """One page of jobs and the total matching the filters."""
        filters: dict[str, Any] = dict(workspace_id=workspace_id, statuses=statuses,
                                       workflow_id=workflow_id, output_type=output_type)
        async with self.db.read() as conn:
            rows = list((await conn.execute(q.page_jobs(**filters, sort_by=sort_by, descending=descending,
                                                   offset=offset, limit=limit))).all())
            if offset == 0 and len(rows) < limit:
                total = len(rows)  # the page holds everything
            elif workflow_id is None and output_type is None:
                total = (await conn.execute(q.count_by_status(
                    workspace_id=workspace_id, statuses=statuses or None))).scalar_one()
            else:
                total = (await conn.execute(q.count_jobs(**filters))).scalar_one()
        return JobPage(rows=rows, total=int(total))

    async def get_job(self, *, workspace_id: str, job_id: str):
        """Everything about one job, or raise JobNotFound."""
        async with self.db.read() as conn:
            row = (await conn.execute(q.job_detail(workspace_id=workspace_id, prompt_id=job_id))).first()
        if row is None:
            raise JobNotFound(job_id)
        return row
