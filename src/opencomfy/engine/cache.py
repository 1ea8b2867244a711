"""Output caches keyed by content (Merkle-style) keys, in ComfyUI's three modes.

- classic: keep what the current prompt uses, drop the rest when a new prompt starts;
- lru: keep up to N entries across prompts, evicting least recently used generations;
- none: nothing survives a prompt.
Entries of nodes created by expansion belong to the original node that expanded them (their
`root`), so classic mode keeps them while that node is still in the prompt.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any


class CacheEntry:
    """A node's outputs (one list per output slot) and its UI dict, if any; `scope` is the
    run's cache scope (its workspace), so one workspace's entries can be dropped alone."""

    __slots__ = ("outputs", "ui", "root", "scope")

    def __init__(self, outputs: list[list[Any]], ui: dict | None, root: bytes, scope: str = ""):
        self.outputs = outputs
        self.ui = ui
        self.root = root
        self.scope = scope


class OutputCache:
    """The interface: `get`, `set`, and prompt boundaries."""

    releases_unused = False  # drop outputs once nothing in the running prompt needs them

    def get(self, key: bytes) -> CacheEntry | None:
        raise NotImplementedError

    def set(self, key: bytes, entry: CacheEntry) -> None:
        raise NotImplementedError

    def start_prompt(self, prompt_keys: set[bytes]) -> None:
        """Called with the keys of the new prompt's original nodes before it runs."""

    def end_prompt(self) -> None:
        """Called after a prompt finished, whatever its outcome."""

    def clear(self) -> None:
        raise NotImplementedError

    def discard(self, key: bytes) -> None:
        """Forget one entry (no-cache mode frees outputs nobody needs any more)."""

    def clear_scope(self, scope: str) -> None:
        """Forget the entries of one scope (a workspace's POST /api/free)."""
        entries: dict[bytes, CacheEntry] = getattr(self, "_entries", {})
        for key in [k for k, entry in entries.items() if entry.scope == scope]:
            del entries[key]

    def __len__(self) -> int:
        raise NotImplementedError


class ClassicCache(OutputCache):
    def __init__(self) -> None:
        self._entries: dict[bytes, CacheEntry] = {}

    def get(self, key):
        return self._entries.get(key)

    def set(self, key, entry):
        self._entries[key] = entry

    def start_prompt(self, prompt_keys):
        stale = [key for key, entry in self._entries.items() if entry.root not in prompt_keys]
        for key in stale:
            del self._entries[key]

    def clear(self):
        self._entries.clear()

    def __len__(self):
        return len(self._entries)


class LRUCache(OutputCache):
    """At most `max_size` entries, except that the current prompt's entries are never evicted."""

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self._entries: OrderedDict[bytes, CacheEntry] = OrderedDict()
        self._generation_of: dict[bytes, int] = {}
        self._generation = 0

    def get(self, key):
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
            self._generation_of[key] = self._generation
        return entry

    def set(self, key, entry):
        self._entries[key] = entry
        self._entries.move_to_end(key)
        self._generation_of[key] = self._generation

    def start_prompt(self, prompt_keys):
        self._generation += 1
        for key in prompt_keys:  # what the new prompt uses is the most recently used
            if key in self._entries:
                self._entries.move_to_end(key)
                self._generation_of[key] = self._generation
        self._evict()

    def end_prompt(self):
        self._evict()

    def _evict(self):
        while len(self._entries) > self.max_size:
            key = next(iter(self._entries))
            if self._generation_of.get(key, 0) >= self._generation:
                break  # everything left was used by the running prompt
            del self._entries[key]
            self._generation_of.pop(key, None)

    def clear(self):
        self._entries.clear()
        self._generation_of.clear()

    def clear_scope(self, scope):
        for key in [k for k, entry in self._entries.items() if entry.scope == scope]:
            del self._entries[key]
            self._generation_of.pop(key, None)

    def __len__(self):
        return len(self._entries)


class NoCache(OutputCache):
    """Entries live only while one prompt runs (so duplicates inside it still run once).

    The executor also drops a node's outputs as soon as no pending node waits on them, so
    this mode holds only what the running graph still needs (ComfyUI's DependencyAwareCache).
    """

    releases_unused = True

    def __init__(self) -> None:
        self._entries: dict[bytes, CacheEntry] = {}

    def get(self, key):
        return self._entries.get(key)

    def set(self, key, entry):
        self._entries[key] = entry

    def start_prompt(self, prompt_keys):
        self._entries.clear()

    def end_prompt(self):
        self._entries.clear()

    def discard(self, key):
        self._entries.pop(key, None)

    def clear(self):
        self._entries.clear()

    def __len__(self):
        return len(self._entries)


def make_cache(mode: str, lru_size: int = 0) -> OutputCache:
    """The cache for a mode name; `lru` with size 0 falls back to classic, as in ComfyUI."""
    if mode == "none":
        return NoCache()
    if mode == "lru" and lru_size > 0:
        return LRUCache(lru_size)
    if mode in ("classic", "lru"):
        return ClassicCache()
    raise ValueError(f"unknown cache mode {mode!r}")
