"""Small shared pieces of the identity modules: clock, ids, hashing of credentials."""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from datetime import datetime, timezone

# Roles inside a workspace. Owners manage members, keys and billing; members use it.
OWNER, MEMBER = "owner", "member"
PERSONAL, TEAM = "personal", "team"


def now_ms() -> int:
    return int(time.time() * 1000)


def iso(ms: int | None) -> str | None:
    """RFC 3339 (UTC) for the spec's date-time fields."""
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat().replace("+00:00", "Z")


def parse_iso(value: str) -> int:
    """RFC 3339 -> Unix ms; raises ValueError."""
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return int(parsed.timestamp() * 1000)


def new_workspace_id() -> str:
    return f"w-{uuid.uuid4()}"


def new_user_id() -> str:
    return f"u-{uuid.uuid4().hex}"


def random_token(nbytes: int = 32) -> str:
    """URL-safe random text with `nbytes` bytes of entropy."""
    return secrets.token_urlsafe(nbytes)


def digest(token: str) -> str:
    """The stored form of a high-entropy credential."""
    return hashlib.sha256(token.encode()).hexdigest()


def normal_email(email: str) -> str:
    return email.strip().lower()


def valid_email(email: object) -> bool:
    if not isinstance(email, str) or len(email) > 320:
        return False
    local, _, domain = email.strip().partition("@")
    return bool(local) and "." in domain and " " not in email.strip()


def mark_access_reduced(db) -> None:
    """Called by every change that can take access away (revocations, removals, deletions):
    credentials this process resolved before it are looked up again on their next use."""
    db.identity_epoch = getattr(db, "identity_epoch", 0) + 1


def access_epoch(db) -> int:
    return getattr(db, "identity_epoch", 0)
