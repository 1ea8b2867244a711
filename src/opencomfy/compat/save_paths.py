"""The save half of ``folder_paths``: where a save node writes, and its file counter.

``folder_paths`` re-exports every name here (custom nodes call
``folder_paths.get_save_image_path``). The counter is kept in memory per folder and prefix,
and the folder is listed again only when something other than our own save nodes changed it.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass

from opencomfy.nodes.image_save_counters import SaveCounters

log = logging.getLogger(__name__)


def _inside(base_dir: str, path: str) -> bool:
    base = os.path.abspath(base_dir)
    try:
        return os.path.commonpath((base, os.path.abspath(path))) == base
    except ValueError:  # different drives on Windows
        return False


@dataclass(frozen=True)
class SaveTarget:
    """Where a save node writes: the folder, the file stem and the sub-folder it reports."""
    full_output_folder: str
    filename: str
    subfolder: str
    filename_prefix: str


def _expand_save_variables(prefix: str, image_width: int, image_height: int) -> str:
    now = time.localtime()
    values = {
        "%width%": str(image_width), "%height%": str(image_height),
        "%year%": str(now.tm_year), "%month%": str(now.tm_mon).zfill(2),
        "%day%": str(now.tm_mday).zfill(2), "%hour%": str(now.tm_hour).zfill(2),
        "%minute%": str(now.tm_min).zfill(2), "%second%": str(now.tm_sec).zfill(2),
    }
    for token, value in values.items():
        prefix = prefix.replace(token, value)
    return prefix


def resolve_save_target(filename_prefix: str, output_dir: str, image_width=0, image_height=0
                        ) -> SaveTarget:
    """Split a prefix like ``"sub/ComfyUI_%width%"`` into folder and stem, refusing escapes."""
    if "%" in filename_prefix:
        filename_prefix = _expand_save_variables(filename_prefix, image_width, image_height)
    normalized = os.path.normpath(filename_prefix)
    subfolder = os.path.dirname(normalized)
    filename = os.path.basename(normalized)
    output_dir = os.path.abspath(output_dir)
    full_output_folder = os.path.join(output_dir, subfolder)
    if not _inside(output_dir, full_output_folder) or os.path.isabs(subfolder):
        message = ("Saving image outside the output folder is not allowed."
                   f"\n full_output_folder: {os.path.abspath(full_output_folder)}"
                   f"\n         output_dir: {output_dir}")
        log.error(message)
        raise ValueError(message)
    return SaveTarget(full_output_folder, filename, subfolder, filename_prefix)


_save_counters = SaveCounters()


def get_save_image_path(filename_prefix: str, output_dir: str, image_width=0, image_height=0
                        ) -> tuple[str, str, int, str, str]:
    """ComfyUI's save helper: (folder, file stem, next counter, sub-folder, expanded prefix).

    The caller writes ``f"{stem}_{counter:05}_.ext"`` and counts up per batch item. The next
    free counter is kept in memory; the folder is listed again only if it changed since.
    """
    target = resolve_save_target(filename_prefix, output_dir, image_width, image_height)
    counter = _save_counters.peek(target.full_output_folder, target.filename)
    return (target.full_output_folder, target.filename, counter, target.subfolder,
            target.filename_prefix)


def claim_save_counter(full_output_folder: str, filename: str) -> int:
    """Reserve the next counter for one file our own save node is about to write."""
    return _save_counters.claim(full_output_folder, filename)


def note_saved(full_output_folder: str, filename: str) -> None:
    """Tell the counter cache that the folder changed only by our own, counted, write."""
    _save_counters.confirm(full_output_folder, filename)


def forget_save_counters() -> None:
    """Drop every in-memory counter (the next save lists its folder again, as after a restart)."""
    _save_counters.clear()
