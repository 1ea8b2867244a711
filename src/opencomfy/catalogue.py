"""The node catalogue: `/object_info`, built once and served as precomputed bytes.

ComfyUI rebuilds `/object_info` on every call (every node's INPUT_TYPES, every model folder
listed), which costs 70–100 ms. Here the catalogue is built once and rebuilt only when what it
describes can have changed:

- the node set changed (`registry.version` moved), or
- a folder whose files show up in combo inputs changed (model folders, the input folder).
  Folder changes are found with a cheap mtime check of those folders and their subfolders,
  done at most once per `check_interval` seconds.

A build encodes each node's entry once; the full body is the concatenation of those pieces,
so `/object_info` and `/object_info/{class}` are both plain byte copies.
"""

from __future__ import annotations

import asyncio
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

    @property
    def gzip_etag(self) -> str:
        """The compressed representation's own ETag (a different byte sequence)."""
        return self.etag[:-1] + '-gzip"'

    def node_body(self, class_type: str) -> bytes:
        """`{class_type: info}` as JSON bytes, or `{}` for an unknown class (as ComfyUI)."""
        return self.node_bodies.get(class_type, b"{}")

    def node_etag(self, class_type: str) -> str:
        return _etag_of(self.node_body(class_type))


def _etag_of(body: bytes) -> str:
    return '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'


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


class Catalogue:
    """Node definitions as ComfyUI's `/object_info` reports them, cached between changes.

    Thread-safe: a build runs in a worker thread (INPUT_TYPES may list folders), and
    concurrent callers wait for the one build in progress instead of starting their own.
    """

    def __init__(self, registry: "NodeRegistry", config: "Config", *,
                 check_interval: float = 1.0) -> None:
        self._registry = registry
        self._config = config
        self._check_interval = check_interval
        self._snapshot: CatalogueSnapshot | None = None
        self._last_check = 0.0
        self._build_lock = threading.Lock()
        self._pending: asyncio.Future | None = None

    # -- reading ---------------------------------------------------------------------------

    async def snapshot(self) -> CatalogueSnapshot:
        """The current catalogue, rebuilt first (off the event loop) if it went stale."""
        snap = self._snapshot
        if snap is not None and not self._is_stale(snap):
            return snap
        # One build at a time; every caller that arrives meanwhile awaits the same one.
        loop = asyncio.get_running_loop()
        pending = self._pending
        if pending is None or pending.done() or pending.get_loop() is not loop:
            pending = self._pending = asyncio.ensure_future(
                loop.run_in_executor(None, self.rebuild))
        return await asyncio.shield(pending)

    def snapshot_sync(self) -> CatalogueSnapshot:
        """The same as `snapshot()`, for callers outside an event loop (tests, tools)."""
        snap = self._snapshot
        if snap is not None and not self._is_stale(snap):
            return snap
        return self.rebuild()

    async def object_info(self) -> dict[str, Any]:
        """The catalogue as a dict (decoded from the cached bytes: callers may mutate it)."""
        return json.loads((await self.snapshot()).body)

    async def node_info(self, class_type: str) -> dict[str, Any] | None:
        """One node's entry, or None for an unknown class."""
        body = (await self.snapshot()).node_bodies.get(class_type)
        return None if body is None else json.loads(body)[class_type]

    def invalidate(self) -> None:
        """Force a rebuild on the next read (e.g. after a custom node pack was reloaded)."""
        self._snapshot = None

    # -- building --------------------------------------------------------------------------

    def rebuild(self) -> CatalogueSnapshot:
        """Build the catalogue now (blocking) and make it current."""
        with self._build_lock:
            snap = self._snapshot
            # Another thread may have finished a build while this one waited for the lock.
            if snap is not None and not self._is_stale(snap, force_check=True):
                return snap
            started = time.perf_counter()
            version = self._registry.version
            signature = self._folder_signature()
            node_bodies = self._encode_nodes()
            body = b"{" + b",".join(piece[1:-1] for piece in node_bodies.values()) + b"}"
            built_at = time.time()
            newest_ns = max((mtime for _, mtime in signature), default=-1)
            snap = CatalogueSnapshot(
                body=body, etag=_etag_of(body), node_bodies=node_bodies,
                registry_version=version, folder_signature=signature,
                built_at=built_at, build_seconds=time.perf_counter() - started,
                unsettled=newest_ns / 1e9 > built_at - _SETTLE_SECONDS,
                gzip_body=(gzip.compress(body, compresslevel=6, mtime=0)
                           if len(body) >= GZIP_MIN_BYTES else None),
            )
            self._snapshot = snap
            self._last_check = time.monotonic()
            log.debug("object_info built: %d nodes, %d bytes in %.1f ms", len(node_bodies),
                      len(body), snap.build_seconds * 1000)
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

    def _is_stale(self, snap: CatalogueSnapshot, *, force_check: bool = False) -> bool:
        if self._registry.version != snap.registry_version:
            return True
        now = time.monotonic()
        if not force_check and now - self._last_check < self._check_interval:
            return False
        self._last_check = now
        if snap.unsettled and time.time() - snap.built_at >= _SETTLE_SECONDS:
            return True
        return self._folder_signature() != snap.folder_signature

    def _folder_signature(self) -> tuple:
        """mtimes of every folder whose listing feeds a combo input (models, input)."""
        entries: list[tuple[str, int]] = []
        budget = [_MAX_WATCHED_DIRS]
        for root in sorted(set(self._watched_roots())):
            _collect_dir_mtimes(root, entries, depth=0, budget=budget)
        return tuple(entries)

    def _watched_roots(self) -> Iterable[str]:
        yield str(self._config.input_dir)
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
    if hasattr(value, "value") and isinstance(getattr(value, "value"), (str, int, float)):
        return value.value  # enum members (e.g. V3 IO types)
    return str(value)
