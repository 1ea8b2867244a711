"""Domain errors of the identity layer; the HTTP layer maps each to the spec's ErrorResponse."""

from __future__ import annotations

from opencomfy.errors import DomainError


class IdentityError(DomainError):
    """Base of the identity layer's errors (a 400 `bad_request` unless a subclass says)."""

    status = 400
    code = "bad_request"


class Unauthenticated(IdentityError):
    status, code = 401, "unauthorized"


class Forbidden(IdentityError):
    status, code = 403, "forbidden"


class NotFound(IdentityError):
    """Also what a caller gets for another workspace's ids, so that ids do not leak."""

    status, code = 404, "not_found"


class Conflict(IdentityError):
    status, code = 409, "conflict"


class Invalid(IdentityError):
    status, code = 422, "validation_error"


class TooMany(IdentityError):
    status, code = 429, "too_many_requests"


class RateLimited(IdentityError):
    """Too many attempts from one address or at one account: try again in `retry_after` s."""

    status, code = 429, "rate_limited"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after
