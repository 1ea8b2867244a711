"""The one base of every domain error: what went wrong, and how the HTTP layer answers it.

A leaf module (it imports nothing of ours), so that every area can raise these without
depending on the HTTP layer. The error middleware (http/errors.py) turns any `DomainError`
into the spec's ErrorResponse `{"code", "message"}` (plus `field` when one is named).
"""

from __future__ import annotations


class DomainError(Exception):
    """Base: `status` and `code` say how the HTTP layer answers, `field` which input is wrong.

    Subclasses set `status` and `code` as class attributes; an error built on the spot
    (`ApiError(status, code, message)`) sets them per instance."""

    status: int = 400
    code: str = "invalid_request"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def details(self) -> dict[str, str]:
        """The extra members of the error body (`field`, when one is named)."""
        return {"field": self.field} if self.field else {}
