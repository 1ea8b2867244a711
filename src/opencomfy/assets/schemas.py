"""Assets on the wire: tag rules, list queries and cursors, and the spec's Asset shape."""

from __future__ import annotations

import base64
import json
import mimetypes
from dataclasses import dataclass, field
from typing import Any

from opencomfy.assets.errors import InvalidAssetInput
from opencomfy.tasks.schemas import rfc3339

# Tags that say what an asset is; set by the system, never through the tag routes.
LOCATION_TAGS = ("input", "output", "temp", "models")
RESERVED_TAGS = frozenset({*LOCATION_TAGS, "missing"})
MAX_TAG_LENGTH = 128
SORT_KEYS = ("name", "created_at", "updated_at", "size", "last_access_time")
CURSOR_SORTS = frozenset({"name", "created_at", "updated_at", "size"})
PREVIEWABLE_PREFIXES = ("image/", "video/")


def normalize_tags(tags: Any, *, field_name: str = "tags") -> list[str]:
    """Tags as given, trimmed and lower-cased, without duplicates; InvalidAssetInput if malformed."""
    if tags is None:
        return []
    if isinstance(tags, str):
        tags = [t for t in tags.split(",")]
    if not isinstance(tags, list):
        raise InvalidAssetInput(f"{field_name} must be a list of strings", field=field_name)
    out: list[str] = []
    for tag in tags:
        if not isinstance(tag, str):
            raise InvalidAssetInput(f"{field_name} must be a list of strings", field=field_name)
        tag = tag.strip().lower()
        if not tag:
            raise InvalidAssetInput("a tag cannot be empty", field=field_name)
        if len(tag) > MAX_TAG_LENGTH or "," in tag or any(ord(c) < 32 for c in tag):
            raise InvalidAssetInput(f"invalid tag {tag[:40]!r}", field=field_name)
        if tag not in out:
            out.append(tag)
    return out


def guess_mime(name: str) -> str:
    mime, _ = mimetypes.guess_type(name)
    if mime:
        return mime
    if name.lower().endswith((".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".gguf")):
        return "application/octet-stream"
    return "application/octet-stream"


@dataclass
class AssetQuery:
    """Filters shared by the list and the histogram."""

    include_tags: list[str] = field(default_factory=list)
    exclude_tags: list[str] = field(default_factory=list)
    name_contains: str | None = None
    metadata_filter: dict[str, Any] = field(default_factory=dict)
    asset_hash: str | None = None


@dataclass
class PageRequest:
    sort: str = "created_at"
    descending: bool = True
    limit: int = 20
    offset: int = 0
    after: tuple[Any, str] | None = None  # (sort value, id) from a cursor


def encode_cursor(sort: str, value: Any, asset_id: str) -> str:
    raw = json.dumps({"s": sort, "v": value, "i": asset_id}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, *, sort: str) -> tuple[Any, str]:
    """The (value, id) a cursor holds; InvalidAssetInput unless minted under `sort`."""
    if sort not in CURSOR_SORTS:
        raise InvalidAssetInput(f"cursor pagination is not supported with sort={sort}", field="after")
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(data, dict) or not isinstance(data.get("i"), str):
            raise ValueError
        value = data.get("v")
        if sort == "name" and not isinstance(value, str) or sort != "name" and not isinstance(value, int):
            raise ValueError
    except ValueError:
        raise InvalidAssetInput("invalid cursor", field="after") from None
    if data.get("s") != sort:
        raise InvalidAssetInput("the cursor was minted under another sort", field="after")
    return value, data["i"]


def preview_url(row: dict) -> str | None:
    """Where a browser fetches the asset's preview (its own content, or its preview asset's)."""
    target = row.get("preview_id") or (row["id"] if (row.get("mime_type") or "").startswith(
        PREVIEWABLE_PREFIXES) else None)
    return f"/api/assets/{target}/content" if target else None


def asset_to_wire(row: dict, tags: list[str]) -> dict[str, Any]:
    """The spec's Asset."""
    out: dict[str, Any] = {
        "id": row["id"],
        "name": row["name"],
        "display_name": row["name"],
        "asset_hash": row["content_hash"],
        "size": row["size"],
        "mime_type": row["mime_type"],
        "tags": sorted(tags),
        "user_metadata": row["user_metadata"] or {},
        "metadata": row["system_metadata"] or {},
        "preview_id": row["preview_id"] or (row["id"] if (row.get("mime_type") or "").startswith("image/")
                                            else None),
        "job_id": row["job_id"],
        "prompt_id": row["job_id"],
        "is_immutable": bool(row["is_immutable"]),
        "created_at": rfc3339(row["created_at"]),
        "updated_at": rfc3339(row["updated_at"]),
        "last_access_time": rfc3339(row["last_access_time"]),
    }
    url = preview_url(row)
    if url:
        out["preview_url"] = url
    return out
