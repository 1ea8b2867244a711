"""A small in-memory LRU of rendered images (thumbnails, previews, channels), bounded in bytes.

The frontend asks for the same thumbnails again and again (every queue panel refresh); the
key includes the file's mtime and size, so an overwritten file is never served stale.
"""

from __future__ import annotations

import threading
from collections import OrderedDict


class RenderCache:
    def __init__(self, *, max_bytes: int = 64 * 1024 * 1024, max_item_bytes: int = 4 * 1024 * 1024):
        self.max_bytes, self.max_item_bytes = max_bytes, max_item_bytes
        self._items: OrderedDict[tuple, bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, key: tuple) -> bytes | None:
        with self._lock:
            data = self._items.get(key)
            if data is not None:
                self._items.move_to_end(key)
            return data

    def put(self, key: tuple, data: bytes) -> None:
        if len(data) > self.max_item_bytes:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._size -= len(old)
            self._items[key] = data
            self._size += len(data)
            while self._size > self.max_bytes and self._items:
                _, evicted = self._items.popitem(last=False)
                self._size -= len(evicted)
