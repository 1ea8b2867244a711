"""Plain records the job service takes and gives (no HTTP, no ComfyUI wire quirks)."""

from __future__ import annotations

from dataclasses import dataclass, field

#: extra_data keys that carry credentials: kept apart, handed to the worker, never returned.
SENSITIVE_EXTRA_DATA_KEYS = ("api_key_comfy_org", "auth_token_comfy_org")


class JobNotFound(LookupError):
    """No job with this id in this workspace."""


class DuplicatePromptId(ValueError):
    """A job with this prompt_id already exists."""


@dataclass(frozen=True)
class SubmittedJob:
    """What POST /prompt answers with."""

    prompt_id: str
    number: float | int


@dataclass(frozen=True)
class ClaimedJob:
    """A job a worker has claimed, with everything needed to run it."""

    prompt_id: str
    number: float
    prompt: dict
    extra_data: dict = field(default_factory=dict)  # includes the sensitive keys
    outputs_to_execute: list[str] = field(default_factory=list)
    client_id: str | None = None
    workspace_id: str = "local"


@dataclass(frozen=True)
class OutputSummary:
    """What the jobs API shows of a job's outputs without loading them."""

    count: int = 0
    previewable: int = 0
    preview: dict | None = None
    media_types: frozenset[str] = frozenset()


@dataclass(frozen=True)
class JobPage:
    """One page of GET /jobs."""

    rows: list
    total: int
