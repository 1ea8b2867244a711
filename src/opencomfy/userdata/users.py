"""Who the caller is, and where their folder lies.

Single-user (ComfyUI's default): everyone is `default`. With --multi-user the frontend sends
the chosen user id in the `Comfy-User` header; ids come from `<user_dir>/users.json`
(`{id: name}`, the file ComfyUI keeps), created by POST /users.
"""

from __future__ import annotations

import json
import os
import re
import threading
import uuid
from pathlib import Path

from opencomfy.files.paths import is_inside
from opencomfy.files.uploads import write_atomically

DEFAULT_USER = "default"
# ComfyUI reserves names starting with this for system users, never reachable over HTTP.
SYSTEM_USER_PREFIX = "__"
_USERS_FILE = "users.json"
_write_lock = threading.Lock()


class UnknownUser(LookupError):
    """The request names a user that does not exist (or a system user)."""


class InvalidUsername(ValueError):
    """POST /users with an empty, reserved or duplicate name."""


def load_users(user_dir: Path) -> dict[str, str]:
    """`{user id: name}` from users.json (empty when there is none or it is unreadable)."""
    try:
        data = json.loads((user_dir / _USERS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def add_user(*, user_dir: Path, username: str) -> str:
    """Create a user; return its id (the name made path-safe, plus a UUID)."""
    name = username.strip()
    if not name:
        raise InvalidUsername("username not provided")
    if name.startswith(SYSTEM_USER_PREFIX):
        raise InvalidUsername("System User prefix not allowed")
    slug = re.sub(r"[^a-zA-Z0-9_-]+", "-", name)
    if slug.startswith(SYSTEM_USER_PREFIX):
        raise InvalidUsername("System User prefix not allowed")
    with _write_lock:
        users = load_users(user_dir)
        if name in users.values():
            raise InvalidUsername("Duplicate username.")
        user_id = f"{slug}_{uuid.uuid4()}"
        users[user_id] = name
        write_atomically(user_dir / _USERS_FILE, json.dumps(users, indent=2).encode())
    return user_id


def resolve_user(*, user_dir: Path, multi_user: bool, header: str | None) -> str:
    """The user id a request acts as; raises UnknownUser."""
    if not multi_user or not header:
        return DEFAULT_USER
    if header.startswith(SYSTEM_USER_PREFIX) or header not in load_users(user_dir):
        raise UnknownUser("Unknown user: " + header)
    return header


def user_root(*, user_dir: Path, user_id: str) -> Path:
    """The user's folder, resolved (not created here); refuses ids that would leave user_dir."""
    if (not user_id or user_id.startswith(SYSTEM_USER_PREFIX) or "/" in user_id
            or "\\" in user_id or "\x00" in user_id or user_id in (".", "..")):
        raise UnknownUser("Unknown user: " + user_id)
    real_dir = Path(os.path.realpath(user_dir))
    root = Path(os.path.realpath(real_dir / user_id))
    if not is_inside(real_dir, root) or root == real_dir:
        raise UnknownUser("Unknown user: " + user_id)
    return root
