"""What `Engine.validate` and `Engine.run` return."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ValidationResult:
    """ComfyUI's validate_prompt result.

    `error` is `{type, message, details, extra_info}` when the prompt cannot run at all;
    `node_errors` maps node ids to `{errors, dependent_outputs, class_type}` and may be
    non-empty even when `ok` (the outputs that validated still run).
    """

    ok: bool
    error: dict | None
    outputs: list[str]
    node_errors: dict[str, dict] = field(default_factory=dict)


@dataclass
class RunResult:
    """The outcome of one prompt: what ComfyUI stores in history."""

    status: str  # "success" | "error" | "interrupted"
    outputs: dict[str, dict] = field(default_factory=dict)
    meta: dict[str, dict] = field(default_factory=dict)
    messages: list[tuple[str, dict]] = field(default_factory=list)
    error: dict | None = None

    @property
    def ok(self) -> bool:
        return self.status == "success"

    def history_status(self) -> dict[str, Any]:
        """History's `status` object: `{status_str, completed, messages}`."""
        return {"status_str": "success" if self.ok else "error", "completed": self.ok,
                "messages": [[event, data] for event, data in self.messages]}
