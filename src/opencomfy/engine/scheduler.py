"""Which node runs next: ComfyUI's ExecutionList, without recursion.

A node is pending until it completes; it is ready once every node it waits on (its strong
links, plus external blocks while its async tasks run) has completed. Lazy inputs are not
strong links until `check_lazy_status` asks for them.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Callable

from opencomfy.engine.graph_utils import is_link

if TYPE_CHECKING:
    from opencomfy.engine.node_spec import ClassSpec


class DependencyCycleError(Exception):
    """Nodes wait on each other (only expansion can create this after validation)."""


class ExecutionList:
    def __init__(self, dynprompt, spec_of: Callable[[str], ClassSpec],
                 is_available: Callable[[str], bool]):
        self.dynprompt = dynprompt
        self.spec_of = spec_of  # node id -> ClassSpec
        self.is_available = is_available  # node id -> outputs already computed or cached
        self.pending: set[str] = set()
        self.block_count: dict[str, int] = {}
        self.dependents: dict[str, set[str]] = {}
        # Ready nodes by ComfyUI's "UX friendly" preference: async and output nodes first (a
        # preview shows as soon as it can), then their parents, then grandparents, then the rest.
        self._ready_tiers: tuple[deque[str], ...] = (deque(), deque(), deque(), deque())
        self._queued: set[str] = set()
        # node id -> nodes that waited on it and have not completed (for releasing outputs)
        self.readers: dict[str, set[str]] = {}
        self.track_readers = False

    # -- building ------------------------------------------------------------------------
    def add_node(self, node_id: str) -> None:
        """Add a node and, transitively, every non-lazy parent whose output is missing."""
        if node_id in self.pending:
            return
        stack = [node_id]
        added = [node_id]
        self._add_pending(node_id)
        while stack:
            current = stack.pop()
            spec = self.spec_of(current)
            lazy = spec.lazy_inputs
            for name, value in self.dynprompt.get_node(current).get("inputs", {}).items():
                if type(value) is not list or not is_link(value) or name in lazy:
                    continue
                source = value[0]
                if source in self.pending:
                    self._add_block(source, current)
                elif not self.is_available(source):
                    self._add_pending(source)
                    self._add_block(source, current)
                    stack.append(source)
                    added.append(source)
                elif self.track_readers:  # keep the available output until `current` ran
                    self.readers.setdefault(source, set()).add(current)
        for added_id in added:
            self._queue_if_ready(added_id)

    def add_strong_link(self, source: str, to_node: str) -> bool:
        """Make `to_node` wait for `source`; False when `source` is already available."""
        if source not in self.pending and self.is_available(source):
            if self.track_readers:
                self.readers.setdefault(source, set()).add(to_node)
            return False
        if source not in self.pending:
            self.add_node(source)
        return self._add_block(source, to_node)

    def _add_pending(self, node_id: str) -> None:
        self.pending.add(node_id)
        self.block_count.setdefault(node_id, 0)

    def _add_block(self, source: str, to_node: str) -> bool:
        waiting = self.dependents.setdefault(source, set())
        if to_node in waiting:
            return True
        waiting.add(to_node)
        self.block_count[to_node] = self.block_count.get(to_node, 0) + 1
        self._queued.discard(to_node)
        return True

    def add_external_block(self, node_id: str) -> Callable[[], None]:
        """Block `node_id` until the returned function is called (its async tasks finished)."""
        self.block_count[node_id] = self.block_count.get(node_id, 0) + 1

        def unblock() -> None:
            self.block_count[node_id] -= 1
            self._queue_if_ready(node_id)

        return unblock

    # -- running -------------------------------------------------------------------------
    def _queue_if_ready(self, node_id: str) -> None:
        if node_id in self.pending and self.block_count.get(node_id, 0) == 0 \
                and node_id not in self._queued:
            self._queued.add(node_id)
            self._ready_tiers[self._tier(node_id)].append(node_id)

    def _tier(self, node_id: str) -> int:
        spec = self.spec_of(node_id)
        if spec.is_output or spec.is_async:
            return 0
        children = self.dependents.get(node_id, ())
        if any(self.spec_of(child).is_output for child in children):
            return 1
        if any(self.spec_of(grandchild).is_output
               for child in children for grandchild in self.dependents.get(child, ())):
            return 2
        return 3

    def requeue(self, node_id: str) -> None:
        """Put back a node that returned PENDING, if nothing blocks it any more."""
        self._queued.discard(node_id)
        self._queue_if_ready(node_id)

    def next_ready(self) -> str | None:
        for queue in self._ready_tiers:
            while queue:
                node_id = queue.popleft()
                if node_id in self._queued and self.block_count.get(node_id, 0) == 0:
                    self._queued.discard(node_id)
                    return node_id
        return None

    def complete(self, node_id: str) -> None:
        self.pending.discard(node_id)
        self._queued.discard(node_id)
        children = self.dependents.pop(node_id, ())
        if self.track_readers and children:
            self.readers[node_id] = set(children)
        for child in children:
            self.block_count[child] -= 1
            self._queue_if_ready(child)

    def nodes_in_cycle(self) -> list[str]:
        """Pending nodes that wait on each other (peel off those no pending node waits on)."""
        remaining = set(self.pending)
        waits_on: dict[str, set[str]] = {n: set() for n in remaining}
        for source, children in self.dependents.items():
            if source in remaining:
                for child in children:
                    if child in remaining:
                        waits_on[child].add(source)
        changed = True
        while changed:
            changed = False
            for node_id in list(remaining):
                needed_by = any(node_id in waits_on[other] for other in remaining)
                if not needed_by or not (waits_on[node_id] & remaining):
                    remaining.discard(node_id)
                    changed = True
        return sorted(remaining)
