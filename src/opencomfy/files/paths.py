"""Confine every client-supplied path to its root folder.

Clients name files with a relative path (a `subfolder` and a `filename`, or a userdata path).
Everything that could leave the root is refused before the disk is touched: `..` segments,
absolute paths, NUL bytes, backslashes (a path separator on Windows, so never a name here),
and symlinks whose target lies outside the root.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from opencomfy.files.workspace_roots import scoped_root

FOLDER_TYPES = ("input", "output", "temp")
_ANNOTATIONS = {f" [{t}]": t for t in FOLDER_TYPES}


class UnsafePath(ValueError):
    """A client path that is malformed or would leave its root; never served or written."""


def check_relative(part: str) -> None:
    """Refuse a relative path that is absolute, climbs with `..`, or holds NUL/backslash."""
    if "\x00" in part:
        raise UnsafePath("NUL byte in path")
    if "\\" in part:
        raise UnsafePath("backslash in path")
    if part.startswith("/"):
        raise UnsafePath("absolute path")
    if any(segment == ".." for segment in part.split("/")):
        raise UnsafePath("'..' in path")


def is_inside(root: Path | str, path: Path | str) -> bool:
    """True when `path` is `root` or below it (both already resolved)."""
    root_s, path_s = os.fspath(root), os.fspath(path)
    return path_s == root_s or path_s.startswith(root_s.rstrip(os.sep) + os.sep)


def confined_path(root: Path, *parts: str) -> Path:
    """Join `parts` under `root` and return the resolved path, or raise UnsafePath.

    Symlinks are resolved (also for a path that does not exist yet, through its parents),
    so a link that points out of the root is refused even though its name looks harmless.
    """
    for part in parts:
        check_relative(part)
    real_root = Path(os.path.realpath(root))
    real = Path(os.path.realpath(real_root.joinpath(*[p for p in parts if p])))
    if not is_inside(real_root, real):
        raise UnsafePath("path leaves its folder")
    return real


def split_annotation(name: str) -> tuple[str, str | None]:
    """`"x.png [output]"` -> `("x.png", "output")`; names without an annotation keep None."""
    for suffix, folder_type in _ANNOTATIONS.items():
        if name.endswith(suffix):
            return name[: -len(suffix)], folder_type
    return name, None


@dataclass(frozen=True)
class FolderRoots:
    """The three ComfyUI file folders a client may name by `type`."""

    input: Path
    output: Path
    temp: Path

    @classmethod
    def from_config(cls, config) -> "FolderRoots":
        """The configured roots themselves (ComfyUI's shared layout)."""
        return cls(input=config.input_dir, output=config.output_dir, temp=config.temp_dir)

    @classmethod
    def for_workspace(cls, config, workspace_id: str | None) -> "FolderRoots":
        """The folders of one workspace: its own sub-folders with `--auth required`, the
        configured roots otherwise (see files/workspace_roots.py)."""
        enabled = config.auth == "required"
        return cls(**{kind: scoped_root(getattr(config, f"{kind}_dir"), workspace_id,
                                        enabled=enabled) for kind in FOLDER_TYPES})

    def root(self, folder_type: str) -> Path:
        if folder_type not in FOLDER_TYPES:
            raise UnsafePath(f"unknown type {folder_type!r}: use input, output or temp")
        return getattr(self, folder_type)

    def locate(self, *, filename: str, subfolder: str = "", folder_type: str | None = None,
               default_type: str = "output") -> tuple[Path, str]:
        """Resolve a client's (filename, subfolder, type) to a confined path and its type.

        The filename may carry ComfyUI's ` [input]` / ` [output]` / ` [temp]` annotation,
        which wins over `folder_type`.
        """
        name, annotated = split_annotation(filename)
        if not name:
            raise UnsafePath("empty filename")
        chosen = annotated or folder_type or default_type
        return confined_path(self.root(chosen), subfolder, name), chosen
