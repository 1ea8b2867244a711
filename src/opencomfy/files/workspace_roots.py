"""Per-workspace file roots: with `--auth required` each workspace has its own input, output
and temp folder, so nothing a workspace uploads or produces can be named by another.

The layout (the roots are the configured input/output/temp folders):

    <root>/ws-<workspace id>/...     ids made of lowercase letters, digits and "-" (ours: w-<uuid>)
    <root>/wsh-<sha256 of the id>/...  any other id (never used verbatim in a path)
    <root>/_unscoped/...              code that runs with no workspace known (see below)

With `--auth none` (`per_workspace()` false) every root is used as it is: ComfyUI's layout.

Which workspace applies is carried by a context variable: the worker sets it for the
duration of a job, the auth layer for the duration of a request (`http.caller.set_caller`).
Tasks inherit it (asyncio copies the context, `asyncio.to_thread` too); a thread that a node
starts itself does not, and lands in `_unscoped`, which no workspace can list or read: such
code fails to find files rather than reaching another workspace's.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

UNSCOPED_DIR = "_unscoped"
_SAFE_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_PREFIXES = ("ws-", "wsh-")

_per_workspace = False
_current: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "opencomfy_file_workspace", default=None)

P = TypeVar("P", str, Path)


def set_per_workspace(enabled: bool) -> None:
    """Turn the per-workspace layout on (`--auth required`) or off (called at configure)."""
    global _per_workspace
    _per_workspace = bool(enabled)


def per_workspace() -> bool:
    return _per_workspace


def dir_name(workspace_id: str | None) -> str:
    """The folder of one workspace under each root (`_unscoped` for None).

    Derived from the server-issued id only; an id that is not plainly safe as a file name
    is hashed, so no id can produce `..`, a separator or another workspace's name."""
    if not workspace_id:
        return UNSCOPED_DIR
    if _SAFE_ID.fullmatch(workspace_id):
        return "ws-" + workspace_id
    return "wsh-" + hashlib.sha256(workspace_id.encode()).hexdigest()[:40]


def is_reserved_name(segment: str) -> bool:
    """Whether a top-level folder name belongs to the per-workspace layout (a workspace's
    folder or `_unscoped`): never reachable through the shared root's legacy files."""
    return segment == UNSCOPED_DIR or segment.startswith(_PREFIXES)


def current_workspace() -> str | None:
    """The workspace whose files the running code may use (None: not known)."""
    return _current.get()


def enter_workspace(workspace_id: str | None) -> contextvars.Token:
    return _current.set(workspace_id)


def leave_workspace(token: contextvars.Token) -> None:
    _current.reset(token)


@contextlib.contextmanager
def use_workspace(workspace_id: str | None) -> Iterator[None]:
    """Run a block as `workspace_id` (a job, a catalogue build for one workspace)."""
    token = enter_workspace(workspace_id)
    try:
        yield
    finally:
        leave_workspace(token)


def scoped_root(root: P, workspace_id: str | None, *, enabled: bool | None = None) -> P:
    """`root` itself in the shared layout; `root/<workspace folder>` per workspace.

    `enabled` overrides the process-wide switch (the HTTP side passes its config's mode)."""
    if not (_per_workspace if enabled is None else enabled):
        return root
    name = dir_name(workspace_id)
    if isinstance(root, Path):
        return root / name
    return os.path.join(root, name)
