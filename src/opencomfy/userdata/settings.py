"""A user's settings: one JSON object in `<user folder>/comfy.settings.json`, as ComfyUI."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any

from opencomfy.files.uploads import write_atomically

SETTINGS_FILE = "comfy.settings.json"
log = logging.getLogger(__name__)
# Read-merge-write must not interleave (the frontend saves settings in quick bursts).
_lock = threading.Lock()


def read_settings(user_root: Path) -> dict[str, Any]:
    """All settings; {} when there are none yet or the file is damaged."""
    path = user_root / SETTINGS_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable settings %s: %s", path, exc)
        return {}
    return data if isinstance(data, dict) else {}


def update_settings(user_root: Path, changes: dict[str, Any]) -> dict[str, Any]:
    """Merge `changes` into the stored settings; return the result."""
    with _lock:
        settings = read_settings(user_root)
        settings.update(changes)
        write_atomically(user_root / SETTINGS_FILE,
                         json.dumps(settings, indent=4, ensure_ascii=False).encode())
    return settings
