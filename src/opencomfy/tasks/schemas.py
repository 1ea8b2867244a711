"""Tasks on the wire: the spec's TaskResponse / TaskEntry (times in RFC 3339)."""

from __future__ import annotations

import datetime as dt
from typing import Any


def rfc3339(ms: int | None) -> str | None:
    """Unix milliseconds as RFC 3339 UTC with milliseconds (`2026-11-29T03:00:00.123Z`)."""
    if ms is None:
        return None
    stamp = dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


def parse_rfc3339(value: str) -> int:
    """RFC 3339 text as Unix milliseconds; ValueError when malformed."""
    stamp = dt.datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.timezone.utc)
    return int(stamp.timestamp() * 1000)


def task_entry(row: dict) -> dict[str, Any]:
    """TaskEntry (list views), with our `progress` (0..1) beside the spec's fields."""
    out: dict[str, Any] = {"id": row["id"], "task_name": row["task_name"], "status": row["status"],
                           "create_time": rfc3339(row["create_time"]), "progress": row["progress"]}
    if row["started_at"] is not None:
        out["started_at"] = rfc3339(row["started_at"])
    if row["completed_at"] is not None:
        out["completed_at"] = rfc3339(row["completed_at"])
    return out


def task_response(row: dict) -> dict[str, Any]:
    """TaskResponse (details): payload, result and error as well."""
    out = task_entry(row)
    out.update(idempotency_key=row["idempotency_key"], payload=row["payload"] or {},
               update_time=rfc3339(row["update_time"]))
    # The spec types these as plain object / string: absent (not null) until they exist.
    if row["result"] is not None:
        out["result"] = row["result"]
    if row["error_message"] is not None:
        out["error_message"] = row["error_message"]
    return out
