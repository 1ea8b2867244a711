"""Loaded models, kept across prompts and keyed by file identity and load options.

A checkpoint is read once; later prompts that name the same file (same size and mtime) get the
same objects. The cache keeps the ``capacity`` most recently used entries; older ones are
dropped (their memory returns once no node output holds them). :func:`clear` empties it
(``/api/free`` with ``unload_models``).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from typing import Any, Callable

_lock = threading.RLock()
_entries: OrderedDict[tuple, Any] = OrderedDict()
capacity = 4


def file_key(path: str, *options) -> tuple:
    st = os.stat(path)
    return (os.path.realpath(path), st.st_size, st.st_mtime_ns, *options)


def get_or_load(key: tuple, load: Callable[[], Any]) -> Any:
    """The cached value for ``key``, loading (outside the lock's fast path) when absent."""
    with _lock:
        if key in _entries:
            _entries.move_to_end(key)
            return _entries[key]
        value = load()
        _entries[key] = value
        while len(_entries) > capacity:
            _entries.popitem(last=False)
        return value


def clear() -> None:
    from opencomfy.diffusion.memory import unload_all

    with _lock:
        _entries.clear()
    unload_all()


def size() -> int:
    return len(_entries)
