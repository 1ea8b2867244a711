"""The node catalogue: `/object_info`, built once and served as precomputed bytes.

ComfyUI rebuilds `/object_info` on every call (every node's INPUT_TYPES, every model folder
listed), which costs 70–100 ms. Here the catalogue is built once and rebuilt only when what it
describes can have changed:

- the node set changed (`registry.version` moved), or
- a folder whose files show up in combo inputs changed (model folders, the input folder).
  With `--auth required` each workspace has its own catalogue over its own input folder.
  Folder changes are found with a cheap mtime check of those folders and their subfolders,
  done at most once per `check_interval` seconds.

A build encodes each node's entry once; the full body is the concatenation of those pieces,
so `/object_info` and `/object_info/{class}` are both plain byte copies.
"""

from __future__ import annotations

import asyncio
import collections
import gzip
import hashlib
import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from opencomfy.files import workspace_roots

if TYPE_CHECKING:
    from opencomfy.config import Config
    from opencomfy.engine import NodeRegistry

log = logging.getLogger(__name__)

#: Folder listings deeper than this are not watched (model trees are shallow; a runaway tree
#: must not make the check expensive).
_MAX_WATCH_DEPTH = 4
_MAX_WATCHED_DIRS = 2_000
#: A folder changed this recently may change again within the same mtime tick (coarse
#: filesystem clocks): a build that saw such an mtime is redone once the folder is older.
_SETTLE_SECONDS = 2.0
#: Bodies from this size on are also kept gzip-compressed (compressed once per build).
GZIP_MIN_BYTES = 32 * 1024
#: Workspaces whose catalogue is kept at once (each is a full /object_info body).
MAX_WORKSPACE_CATALOGUES = 32


@dataclass(frozen=True)
class CatalogueSnapshot:
    """One build of the catalogue: the `/object_info` body, its ETag, and per-node bodies."""

    body: bytes
    etag: str
    node_bodies: dict[str, bytes] = field(repr=False)
    registry_version: int
    folder_signature: tuple = field(repr=False)
    built_at: float
    build_seconds: float
    #: True when a watched folder had changed just before the build (see _SETTLE_SECONDS).
    unsettled: bool = False
    #: The body gzip-compressed (for remote browsers), when it is large enough to matter.
    gzip_body: bytes | None = field(default=None, repr=False)
    #: Whose catalogue this is ("" in the shared layout; a workspace's folder name).
    scope: str = ""

    @property
    def gzip_etag(self) -> str:
        """The compressed representation's own ETag (a different byte sequence)."""
        return self.etag[:-1] + '-gzip"'

    def node_body(self, class_type: str) -> bytes:
        """`{class_type: info}` as JSON bytes, or `{}` for an unknown class (as ComfyUI)."""
        return self.node_bodies.get(class_type, b"{}")

    def node_etag(self, class_type: str) -> str:
        return _etag_of(self.node_body(class_type), self.scope)


def _etag_of(body: bytes, scope: str = "") -> str:
    """A strong ETag of `body`; per workspace the workspace is part of it, so that one
    workspace's tag never validates another's copy (even when both lists are alike)."""
    digest = hashlib.blake2b(body, digest_size=12)
    if scope:
        digest.update(b"\0" + scope.encode())
    return '"' + digest.hexdigest() + '"'


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """True when an `If-None-Match` header names `etag` (weak comparison, `*` included)."""
    if not if_none_match:
        return False
    for candidate in if_none_match.split(","):
        candidate = candidate.strip()
        if candidate == "*":
            return True
        if candidate.startswith("W/"):
            candidate = candidate[2:]
        if candidate == etag:
            return True
    return False


class _Slot:
    """The catalogue of one workspace (or the only one, in the shared layout)."""

    def __init__(self) -> None:
        self.snapshot: CatalogueSnapshot | None = None
        self.last_check = 0.0
        self.build_lock = threading.Lock()
        self.pending: asyncio.Future | None = None


class Catalogue:
    """Node definitions as ComfyUI's `/object_info` reports them, cached between changes.

    With `--auth required` each workspace has its own catalogue: combo inputs list the
    workspace's own files (folder_paths answers per workspace), and its ETag is its own, so
    no client or cache ever gets another workspace's lists. The workspace is the one the
    request runs as (`files.workspace_roots.current_workspace()`, set by the auth layer)
    unless one is named. At most `MAX_WORKSPACE_CATALOGUES` are kept (least recently used
    dropped).

    Thread-safe: a build runs in a worker thread (INPUT_TYPES may list folders), and
    concurrent callers wait for the one build in progress instead of starting their own.
    """

    def __init__(self, registry: "NodeRegistry", config: "Config", *,
                 check_interval: float = 1.0) -> None:
        self._registry = registry
        self._config = config
        self._check_interval = check_interval
        self._slots: collections.OrderedDict[str, _Slot] = collections.OrderedDict()
        self._slots_lock = threading.Lock()

    # -- workspaces ------------------------------------------------------------------------

    def _per_workspace(self) -> bool:
        return getattr(self._config, "auth", "none") == "required"

    def _workspace(self, workspace_id: str | None) -> str | None:
        return workspace_id if workspace_id is not None else workspace_roots.current_workspace()

    def _scope_key(self, workspace_id: str | None) -> str:
        """"" in the shared layout; the workspace's folder name per workspace."""
        return workspace_roots.dir_name(workspace_id) if self._per_workspace() else ""

    def _slot(self, key: str) -> _Slot:
        with self._slots_lock:
            slot = self._slots.get(key)
            if slot is None:
                slot = self._slots[key] = _Slot()
                while len(self._slots) > MAX_WORKSPACE_CATALOGUES:
                    self._slots.popitem(last=False)
            else:
                self._slots.move_to_end(key)
            return slot

    # -- reading ---------------------------------------------------------------------------

    async def snapshot(self, workspace_id: str | None = None) -> CatalogueSnapshot:
        """The current catalogue (of `workspace_id`, default the current workspace), rebuilt
        first (off the event loop) if it went stale."""
        workspace_id = self._workspace(workspace_id)
        slot = self._slot(self._scope_key(workspace_id))
        snap = slot.snapshot
        if snap is not None and not self._is_stale(slot, snap, workspace_id):
            return snap
        # One build at a time; every caller that arrives meanwhile awaits the same one.
        loop = asyncio.get_running_loop()
        pending = slot.pending
        if pending is None or pending.done() or pending.get_loop() is not loop:
            pending = slot.pending = asyncio.ensure_future(
                loop.run_in_executor(None, self.rebuild, workspace_id))
        return await asyncio.shield(pending)

    def snapshot_sync(self, workspace_id: str | None = None) -> CatalogueSnapshot:
        """The same as `snapshot()`, for callers outside an event loop (tests, tools)."""
        workspace_id = self._workspace(workspace_id)
        slot = self._slot(self._scope_key(workspace_id))
        snap = slot.snapshot
        if snap is not None and not self._is_stale(slot, snap, workspace_id):
            return snap
        return self.rebuild(workspace_id)

    async def object_info(self, workspace_id: str | None = None) -> dict[str, Any]:
        """The catalogue as a dict (decoded from the cached bytes: callers may mutate it)."""
        return json.loads((await self.snapshot(workspace_id)).body)

    async def node_info(self, class_type: str, workspace_id: str | None = None
                        ) -> dict[str, Any] | None:
        """One node's entry, or None for an unknown class."""
        body = (await self.snapshot(workspace_id)).node_bodies.get(class_type)
        return None if body is None else json.loads(body)[class_type]

    def invalidate(self) -> None:
        """Force a rebuild on the next read (e.g. after a custom node pack was reloaded)."""
        with self._slots_lock:
            for slot in self._slots.values():
                slot.snapshot = None

    # -- building --------------------------------------------------------------------------

    def rebuild(self, workspace_id: str | None = None) -> CatalogueSnapshot:
        """Build the catalogue (of `workspace_id`, default the current one) now (blocking) and
        make it current."""
        workspace_id = self._workspace(workspace_id)
        scope = self._scope_key(workspace_id)
        slot = self._slot(scope)
        with slot.build_lock:
            snap = slot.snapshot
            # Another thread may have finished a build while this one waited for the lock.
            if snap is not None and not self._is_stale(slot, snap, workspace_id,
                                                       force_check=True):
                return snap
            started = time.perf_counter()
            version = self._registry.version
            signature = self._folder_signature(workspace_id)
            # INPUT_TYPES list the folders of this workspace (this may be an executor thread,
            # which the caller's context does not reach: set it here).
            with workspace_roots.use_workspace(workspace_id):
                node_bodies = self._encode_nodes()
            body = b"{" + b",".join(piece[1:-1] for piece in node_bodies.values()) + b"}"
            built_at = time.time()
            newest_ns = max((mtime for _, mtime in signature), default=-1)
            snap = CatalogueSnapshot(
                body=body, etag=_etag_of(body, scope), node_bodies=node_bodies,
                registry_version=version, folder_signature=signature,
                built_at=built_at, build_seconds=time.perf_counter() - started,
                unsettled=newest_ns / 1e9 > built_at - _SETTLE_SECONDS,
                gzip_body=(gzip.compress(body, compresslevel=6, mtime=0)
                           if len(body) >= GZIP_MIN_BYTES else None),
                scope=scope,
            )
            slot.snapshot = snap
            slot.last_check = time.monotonic()
            log.debug("object_info built%s: %d nodes, %d bytes in %.1f ms",
                      f" for {scope}" if scope else "", len(node_bodies), len(body),
                      snap.build_seconds * 1000)
            return snap

    def _encode_nodes(self) -> dict[str, bytes]:
        """Each node's `{class: info}` as compact JSON; a node whose info fails is left out."""
        encoded: dict[str, bytes] = {}
        for class_type in list(self._registry.classes):
            try:
                info = _conform(class_type, self._registry.node_info(class_type))
                encoded[class_type] = json.dumps({class_type: info}, separators=(",", ":"),
                                                 ensure_ascii=False, default=_json_fallback
                                                 ).encode()
            except Exception:  # a broken custom node must not take the catalogue down
                log.exception("node %s is left out of /object_info: describing it failed",
                              class_type)
        return encoded

    # -- staleness -------------------------------------------------------------------------

    def _is_stale(self, slot: _Slot, snap: CatalogueSnapshot, workspace_id: str | None, *,
                  force_check: bool = False) -> bool:
        if self._registry.version != snap.registry_version:
            return True
        now = time.monotonic()
        if not force_check and now - slot.last_check < self._check_interval:
            return False
        slot.last_check = now
        if snap.unsettled and time.time() - snap.built_at >= _SETTLE_SECONDS:
            return True
        return self._folder_signature(workspace_id) != snap.folder_signature

    def _folder_signature(self, workspace_id: str | None = None) -> tuple:
        """mtimes of every folder whose listing feeds a combo input (models, input)."""
        entries: list[tuple[str, int]] = []
        budget = [_MAX_WATCHED_DIRS]
        for root in sorted(set(self._watched_roots(workspace_id))):
            _collect_dir_mtimes(root, entries, depth=0, budget=budget)
        return tuple(entries)

    def _watched_roots(self, workspace_id: str | None = None) -> Iterable[str]:
        # Per workspace only its own input folder (the root holds every workspace's).
        yield str(workspace_roots.scoped_root(self._config.input_dir, workspace_id,
                                              enabled=self._per_workspace()))
        yield str(self._config.models_dir)
        try:
            from opencomfy.compat import folder_paths
        except Exception:  # compat not importable: the config's folders are all there is
            return
        mapping = getattr(folder_paths, "folder_names_and_paths", None) or {}
        for name, value in list(mapping.items()):
            if name == "custom_nodes":
                continue
            paths = value[0] if isinstance(value, (tuple, list)) and value else ()
            for path in paths:
                yield str(path)


def _collect_dir_mtimes(path: str, out: list[tuple[str, int]], *, depth: int,
                        budget: list[int]) -> None:
    """Append (path, mtime_ns) for `path` and its subfolders; a missing folder counts as -1."""
    if budget[0] <= 0:
        return
    budget[0] -= 1
    try:
        out.append((path, os.stat(path).st_mtime_ns))
    except OSError:
        out.append((path, -1))
        return
    if depth >= _MAX_WATCH_DEPTH:
        return
    try:
        with os.scandir(path) as it:
            subdirs = sorted(e.path for e in it if e.is_dir(follow_symlinks=True))
    except OSError:
        return
    for sub in subdirs:
        _collect_dir_mtimes(sub, out, depth=depth + 1, budget=budget)


#: NodeInfo fields the spec types as strings, and what a missing (None) value becomes.
_STRING_DEFAULTS = {"display_name": None, "description": "", "category": "sd",
                    "python_module": "nodes", "name": None}
_LIST_FIELDS = ("output", "output_is_list", "output_name")
_BOOL_FIELDS = ("output_node", "deprecated", "experimental", "api_node")


def _conform(class_type: str, info: dict[str, Any]) -> dict[str, Any]:
    """Fill the holes a node definition may leave (a V3 node without a display name, an
    output without a tooltip) so that every entry matches the spec's NodeInfo."""
    for key, default in _STRING_DEFAULTS.items():
        if key in info and info[key] is None:
            info[key] = class_type if default is None else default
    for key in _LIST_FIELDS:
        if key in info and info[key] is None:
            info[key] = []
    for key in _BOOL_FIELDS:
        if key in info and info[key] is None:
            info[key] = False
    for key in ("input", "input_order"):
        if key in info and info[key] is None:
            info[key] = {}
    tooltips = info.get("output_tooltips", [])
    if tooltips is None:
        del info["output_tooltips"]  # optional: absent rather than null
    elif isinstance(tooltips, (list, tuple)) and any(t is None for t in tooltips):
        info["output_tooltips"] = ["" if t is None else t for t in tooltips]
    return info


def _json_fallback(value: Any) -> Any:
    """Encode what custom nodes put in INPUT_TYPES that json cannot (sets, paths, enums)."""
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "value") and isinstance(value.value, (str, int, float)):
        return value.value  # enum members (e.g. V3 IO types)
    return str(value)
