"""Parsing and checking of the queue's request bodies and query strings.

Each parser turns untrusted JSON or query parameters into a typed request, or raises
`BadRequest` naming what is wrong; the HTTP layer maps that to the route's error shape.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from typing import Any, Mapping

from opencomfy.jobs import transitions as tr

OUTPUT_TYPES = ("image", "video", "audio", "3d")
# The spec's names first, then ComfyUI's own names for the same keys.
SORT_KEYS = {"create_time": "create_time", "created_at": "create_time",
             "execution_time": "execution_time", "execution_duration": "execution_time"}
MAX_JOBS_LIMIT = 1000
DEFAULT_JOBS_LIMIT = 100


class BadRequest(ValueError):
    """Invalid input. `kind` is ComfyUI's error type (for /prompt) or our error code."""

    def __init__(self, kind: str, message: str, details: str = "") -> None:
        super().__init__(message)
        self.kind, self.message, self.details = kind, message, details or message


@dataclass(frozen=True)
class PromptRequest:
    """A parsed POST /prompt body."""

    prompt: dict
    prompt_id: str | None = None
    number: float | None = None
    front: bool = False
    extra_data: dict | None = None
    client_id: str | None = None
    partial_execution_targets: list[str] | None = None
    workflow_id: str | None = None
    workflow_version_id: str | None = None


def is_canonical_uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value
    except (ValueError, TypeError, AttributeError):
        return False


MAX_ID_LENGTH = 255  # client_id, workflow_id, workflow_version_id (stored columns)


def _optional_str(body: Mapping, key: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequest("invalid_prompt", f"Invalid {key}", f"{key} must be a string")
    if len(value) > MAX_ID_LENGTH:
        raise BadRequest("invalid_prompt", f"Invalid {key}",
                         f"{key} must be at most {MAX_ID_LENGTH} characters")
    return value


def parse_prompt_request(body: Any) -> PromptRequest:
    """Check a POST /prompt body the way ComfyUI reads it (plus stricter types)."""
    if not isinstance(body, dict):
        raise BadRequest("invalid_prompt", "Invalid prompt", "request body must be a JSON object")
    if "prompt" not in body or body["prompt"] is None:
        raise BadRequest("no_prompt", "No prompt provided")
    prompt = body["prompt"]
    if not isinstance(prompt, dict):
        raise BadRequest("invalid_prompt", "Invalid prompt", "prompt must be a JSON object of nodes")
    prompt_id = body.get("prompt_id")
    if prompt_id is not None:
        if not isinstance(prompt_id, str) or not is_canonical_uuid(prompt_id):
            raise BadRequest("invalid_prompt_id", "Invalid prompt_id",
                             "prompt_id must be a UUID in canonical form (lowercase, with hyphens)")
    number = body.get("number")
    if number is not None:
        if isinstance(number, bool):
            raise BadRequest("invalid_prompt", "Invalid number", "number must be a number")
        try:
            number = float(number)
        except (TypeError, ValueError):
            raise BadRequest("invalid_prompt", "Invalid number", "number must be a number") from None
        if not math.isfinite(number):
            raise BadRequest("invalid_prompt", "Invalid number", "number must be finite")
    extra_data = body.get("extra_data")
    if extra_data is not None and not isinstance(extra_data, dict):
        raise BadRequest("invalid_prompt", "Invalid extra_data", "extra_data must be a JSON object")
    targets = body.get("partial_execution_targets")
    if targets is not None:
        if not isinstance(targets, list) or not all(isinstance(t, (str, int)) for t in targets):
            raise BadRequest("invalid_prompt", "Invalid partial_execution_targets",
                             "partial_execution_targets must be a list of node ids")
        targets = [str(t) for t in targets]
    return PromptRequest(
        prompt=prompt, prompt_id=prompt_id, number=number, front=bool(body.get("front")),
        extra_data=extra_data, client_id=_optional_str(body, "client_id"),
        partial_execution_targets=targets, workflow_id=_optional_str(body, "workflow_id"),
        workflow_version_id=_optional_str(body, "workflow_version_id"),
    )


QUERY_INT_MAX = 2**62  # below SQLite's and PostgreSQL's 64-bit integers, with room for sums


def _int_param(query: Mapping[str, str], key: str, default: int | None = None) -> int | None:
    raw = query.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest("invalid_parameter", f"{key} must be an integer") from None
    # Clamped into what SQL LIMIT/OFFSET can hold: beyond it every window is the same one.
    return max(-QUERY_INT_MAX, min(value, QUERY_INT_MAX))


@dataclass(frozen=True)
class HistoryWindow:
    max_items: int | None
    offset: int | None


def parse_history_window(query: Mapping[str, str], *, default_offset: int | None) -> HistoryWindow:
    """`max_items` / `offset` of GET /history (offset may be negative: the newest items)."""
    return HistoryWindow(max_items=_int_param(query, "max_items"),
                         offset=_int_param(query, "offset", default_offset))


@dataclass(frozen=True)
class JobsQuery:
    statuses: list[str] | None
    workflow_id: str | None
    output_type: str | None
    sort_by: str
    descending: bool
    offset: int
    limit: int


def parse_jobs_query(query: Mapping[str, str]) -> JobsQuery:
    """The filters, sort and page of GET /jobs."""
    statuses = None
    raw_status = query.get("status")
    if raw_status:
        statuses = [s.strip() for s in raw_status.split(",") if s.strip()]
        unknown = [s for s in statuses if s not in tr.STATUSES]
        if unknown:
            raise BadRequest("invalid_parameter",
                             f"unknown status {unknown[0]!r}; use {', '.join(tr.STATUSES)}")
    output_type = query.get("output_type") or None
    if output_type is not None and output_type not in OUTPUT_TYPES:
        raise BadRequest("invalid_parameter", f"output_type must be one of {', '.join(OUTPUT_TYPES)}")
    sort_by = SORT_KEYS.get(query.get("sort_by") or "create_time")
    if sort_by is None:
        raise BadRequest("invalid_parameter", "sort_by must be create_time or execution_time")
    sort_order = (query.get("sort_order") or "desc").lower()
    if sort_order not in ("asc", "desc"):
        raise BadRequest("invalid_parameter", "sort_order must be asc or desc")
    offset = _int_param(query, "offset", 0) or 0
    if offset < 0:
        raise BadRequest("invalid_parameter", "offset must be 0 or more")
    limit = _int_param(query, "limit", DEFAULT_JOBS_LIMIT)
    if limit is None or not 1 <= limit <= MAX_JOBS_LIMIT:
        raise BadRequest("invalid_parameter", f"limit must be between 1 and {MAX_JOBS_LIMIT}")
    return JobsQuery(statuses=statuses, workflow_id=query.get("workflow_id") or None,
                     output_type=output_type, sort_by=sort_by, descending=sort_order == "desc",
                     offset=offset, limit=limit)


def id_list(body: Mapping, key: str) -> list[str] | None:
    """A list of job ids under `key` (None when absent)."""
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadRequest("invalid_parameter", f"{key} must be a list of ids")
    return value


def flag(body: Mapping, key: str) -> bool:
    """A boolean field (absent: False)."""
    value = body.get(key, False)
    if not isinstance(value, bool):
        raise BadRequest("invalid_parameter", f"{key} must be true or false")
    return value
