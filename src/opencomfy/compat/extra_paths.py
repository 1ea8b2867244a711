"""``extra_model_paths.yaml`` in ComfyUI's format: more model and custom-node folders.

    comfyui:
        base_path: ../ComfyUI          # relative to this yaml file; ~ and $VARS expanded
        is_default: true               # put these folders first
        checkpoints: models/checkpoints
        loras: |
            models/loras
            more/loras
        custom_nodes: custom_nodes

Each top-level section names a group; every other key is a folder kind (``checkpoints``,
``custom_nodes``, ...) whose value is one path per line (a YAML list is accepted too).
Paths are relative to ``base_path`` when given, else to the yaml file's folder.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import yaml

log = logging.getLogger(__name__)


class ExtraPathsError(ValueError):
    """The yaml file cannot be read or does not have ComfyUI's shape."""


def _expand(path: str) -> str:
    return os.path.expandvars(os.path.expanduser(path))


def parse_extra_paths(yaml_path: str | os.PathLike) -> list[tuple[str, str, bool]]:
    """The ``(folder kind, absolute path, is_default)`` entries the file declares, in order."""
    yaml_path = Path(yaml_path)
    try:
        config = yaml.safe_load(yaml_path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ExtraPathsError(f"cannot read {yaml_path}: {exc}") from None
    if config is None:
        return []
    if not isinstance(config, dict):
        raise ExtraPathsError(f"{yaml_path}: expected a mapping of sections at the top level")
    yaml_dir = yaml_path.resolve().parent
    entries: list[tuple[str, str, bool]] = []
    for section_name, section in config.items():
        if section is None:
            continue
        if not isinstance(section, dict):
            raise ExtraPathsError(f"{yaml_path}: section {section_name!r} is not a mapping")
        section = dict(section)
        base_path = section.pop("base_path", None)
        if base_path is not None:
            base_path = _expand(str(base_path))
            if not os.path.isabs(base_path):
                base_path = os.path.abspath(os.path.join(yaml_dir, base_path))
        is_default = bool(section.pop("is_default", False))
        for folder_kind, value in section.items():
            if value is None:
                continue
            lines = value if isinstance(value, list) else str(value).split("\n")
            for line in lines:
                line = str(line).strip()
                if not line:
                    continue
                if base_path is not None:
                    full = os.path.join(base_path, _expand(line))
                else:
                    full = _expand(line)
                    if not os.path.isabs(full):
                        full = os.path.join(yaml_dir, full)
                entries.append((str(folder_kind), os.path.normpath(full), is_default))
    return entries


def load_extra_path_config(yaml_path: str | os.PathLike) -> list[tuple[str, str, bool]]:
    """Add every folder the file declares to ``folder_paths``; return what was added."""
    from opencomfy.compat import folder_paths

    entries = parse_extra_paths(yaml_path)
    for folder_kind, path, is_default in entries:
        log.info("Adding extra search path %s %s", folder_kind, path)
        folder_paths.add_model_folder_path(folder_kind, path, is_default)
    return entries
