"""Where the secrets keyring comes from: `OPENCOMFY_SECRETS_KEYS` when set, else a keyring
file in the data directory, made on first start (one random 32-byte key, mode 0600).

So secrets work out of the box, and survive a restart: the file is read again each start.
The file lives beside the database, not in it, so a copy of the database alone does not
open the secrets. Servers that share one database (replicas) must share one keyring: set
the environment variable on each, or give them the same data directory.
"""

from __future__ import annotations

import base64
import logging
import os
import secrets
import stat
from pathlib import Path

from opencomfy.secrets.crypto import Keyring, KeyringError

log = logging.getLogger(__name__)
KEYRING_FILE = "secrets-keyring"


def resolve_keyring(*, configured: str | None, state_dir: Path) -> str:
    """The keyring spec to use ("id:base64key,..."): the configured one, or the data
    directory's file (created now when missing). KeyringError when the file is unusable."""
    if configured:
        return configured
    path = state_dir / KEYRING_FILE
    if not path.exists():
        _create(path)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        log.warning("%s is readable by other users (mode %o): chmod 600 it", path, mode)
    spec = path.read_text().strip()
    try:
        Keyring(spec)
    except KeyringError as exc:
        raise KeyringError(f"{path}: {exc}") from None
    return spec


def _create(path: Path) -> None:
    """Write a new keyring atomically: a private temp file hard-linked into place, so a
    second server starting at the same moment reads a whole file (theirs or ours)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    key_id = "local-" + secrets.token_hex(4)
    spec = f"{key_id}:{base64.b64encode(secrets.token_bytes(32)).decode()}\n"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(spec)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
            log.info("made a secrets keyring in %s (set OPENCOMFY_SECRETS_KEYS to manage keys "
                     "yourself)", path)
        except FileExistsError:
            pass  # another server made it first: use theirs
    finally:
        tmp.unlink(missing_ok=True)
