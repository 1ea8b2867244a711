"""Domain errors of the assets area; the HTTP layer maps each to the spec's error shape."""

from __future__ import annotations

from opencomfy.errors import DomainError


class AssetError(DomainError):
    """Base of the assets area's errors (a 400 `invalid_request` unless a subclass says)."""

    status = 400
    code = "invalid_request"


class InvalidAssetInput(AssetError):
    status, code = 400, "invalid_request"


class AssetNotFound(AssetError):
    status, code = 404, "not_found"


class ContentNotFound(AssetError):
    status, code = 404, "not_found"


class ReservedTag(AssetError):
    status, code = 422, "reserved_tag"


class AssetInUse(AssetError):
    status, code = 409, "asset_in_use"


class AssetImmutable(AssetError):
    status, code = 409, "asset_immutable"


class ContentTooLarge(AssetError):
    status, code = 413, "payload_too_large"


class FormatNotAllowed(AssetError):
    """The spec's ValidationError with FORMAT_NOT_ALLOWED (a pickle where safetensors is required)."""

    status, code = 422, "FORMAT_NOT_ALLOWED"

    def __init__(self, message: str, *, field: str | None = "format") -> None:
        super().__init__(message, field=field)


class BadArchive(AssetError):
    """A zip that is unsafe (`..`, absolute names) or too big once expanded."""

    status, code = 400, "invalid_archive"
