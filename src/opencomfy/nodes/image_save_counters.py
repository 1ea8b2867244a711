"""The in-memory file counters behind ``folder_paths.get_save_image_path``.

Lives beside the image save nodes, its main users; ``folder_paths`` owns the one instance.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

# A folder changed this recently may change again without its mtime moving (the clock's
# resolution), so a listing taken now cannot be trusted later (git's "racy" rule).
_RACY_SECONDS = 2.0


def recently_changed(mtime: float | None) -> bool:
    """Whether a folder with this mtime (seconds) changed too recently to trust a listing."""
    return mtime is None or time.time() - mtime < _RACY_SECONDS


class SaveCounters:
    """The next free file counter per (folder, file stem), kept in memory.

    ComfyUI lists the output folder on every save to find the highest counter, which gets
    slow with many outputs. Here a folder is listed once; our own save nodes then claim
    counters and confirm their writes, so the folder's mtime stays "known". A folder whose
    mtime changed for another reason (a custom node saved, a user copied files) is listed
    again, which keeps ComfyUI's results for nodes that count on their own.
    """

    @dataclass
    class _Entry:
        next_counter: int
        folder_mtime_ns: int | None

    # Each PreviewImage node invents a random prefix, so bound the table; an entry that
    # falls out only costs one listing when it is used again.
    MAX_ENTRIES = 4096

    def __init__(self):
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[str, str], SaveCounters._Entry] = OrderedDict()

    @staticmethod
    def _key(folder: str, filename: str) -> tuple[str, str]:
        return os.path.normcase(os.path.abspath(folder)), os.path.normcase(filename)

    @staticmethod
    def _folder_mtime(folder: str) -> int | None:
        try:
            return os.stat(folder).st_mtime_ns
        except FileNotFoundError:
            return None

    @staticmethod
    def _scan(folder: str, filename: str) -> int:
        """1 + the highest counter of ``<filename>_<digits>_...`` files (ComfyUI's rule)."""
        stem_len = len(filename)
        stem = os.path.normcase(filename)
        highest = 0
        for name in os.listdir(folder):
            head = name[:stem_len + 1]
            if len(head) != stem_len + 1 or head[-1] != "_" or os.path.normcase(head[:-1]) != stem:
                continue
            try:
                digits = int(name[stem_len + 1:].split("_")[0])
            except ValueError:
                digits = 0
            highest = max(highest, digits)
        return highest + 1

    def _current(self, folder: str, filename: str, trust_recent: bool) -> SaveCounters._Entry:
        key = self._key(folder, filename)
        mtime = self._folder_mtime(folder)
        if mtime is None:
            os.makedirs(folder, exist_ok=True)
            mtime = self._folder_mtime(folder)
            if mtime is None:
                raise OSError(f"cannot read the output folder {folder}")
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = self._Entry(self._scan(folder, filename), mtime)
            if len(self._entries) > self.MAX_ENTRIES:
                self._entries.popitem(last=False)
        elif entry.folder_mtime_ns != mtime or (not trust_recent and recently_changed(mtime / 1e9)):
            # Never go below a counter already handed out: its file may still be in flight.
            entry.next_counter = max(entry.next_counter, self._scan(folder, filename))
            entry.folder_mtime_ns = mtime
        self._entries.move_to_end(key)
        return entry

    def peek(self, folder: str, filename: str) -> int:
        """For callers that count on their own: list again unless the folder is quiet."""
        with self._lock:
            return self._current(folder, filename, trust_recent=False).next_counter

    def claim(self, folder: str, filename: str) -> int:
        with self._lock:
            # Our writers create files exclusively and skip taken names, so a change within
            # the mtime's resolution cannot make them overwrite anything.
            entry = self._current(folder, filename, trust_recent=True)
            counter = entry.next_counter
            entry.next_counter += 1
            return counter

    def confirm(self, folder: str, filename: str) -> None:
        with self._lock:
            entry = self._entries.get(self._key(folder, filename))
            if entry is not None:
                entry.folder_mtime_ns = self._folder_mtime(folder)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
