"""Userdata files (saved workflows, templates, user.css ...) inside one user's folder."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from opencomfy.files.paths import UnsafePath, confined_path, is_inside
from opencomfy.files.uploads import write_atomically


class UserFileNotFound(LookupError):
    """No such file (or directory) in the user's folder."""


class UserFileExists(FileExistsError):
    """The target exists and overwrite was refused."""


def user_path(root: Path, rel: str) -> Path:
    """A path inside the user's folder; raises UnsafePath for anything that leaves it."""
    if not rel:
        raise UnsafePath("empty path")
    return confined_path(root, rel)


def file_info(path: Path, root: Path) -> dict:
    """ComfyUI's FileInfo: path relative to `root` with `/`, size, times in ms."""
    st = path.stat()
    return {"path": path.relative_to(root).as_posix(), "size": st.st_size,
            "modified": int(st.st_mtime * 1000), "created": int(st.st_ctime * 1000)}


def _real_root(root: Path) -> Path:
    return Path(os.path.realpath(root))


def list_files(*, root: Path, directory: str, recurse: bool, full_info: bool,
               split: bool) -> list:
    """Files under `directory` (hidden names skipped, as ComfyUI's glob does), sorted.

    Plain relative paths; or FileInfo dicts (`full_info`); or `[path, *parts]` (`split`).
    A directory that does not exist yet lists as empty.
    """
    folder = user_path(root, directory)
    if not folder.is_dir():
        return []
    real_root = _real_root(root)
    found: list[Path] = []
    for current, dirs, names in os.walk(folder, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in names:
            if name.startswith("."):
                continue
            path = Path(current) / name
            real = Path(os.path.realpath(path))
            # A symlink inside the folder is listed only if it stays inside the user's root.
            if is_inside(real_root, real) and real.is_file():
                found.append(path)
        if not recurse:
            break
    found.sort(key=lambda p: p.relative_to(folder).as_posix())
    if full_info:
        return [file_info(p, folder) for p in found]
    rels = [p.relative_to(folder).as_posix() for p in found]
    if split:
        return [[rel, *rel.split("/")] for rel in rels]
    return rels


def list_dir_v2(*, root: Path, rel: str) -> list[dict]:
    """/v2/userdata: one level of a folder, `[{name, path, type, size?, modified?}]`,
    directories first then case-insensitive by name. Paths are relative to the user's root."""
    folder = user_path(root, rel) if rel else _real_root(root)
    real_root = _real_root(root)
    if not folder.exists():
        if folder == real_root:
            return []
        raise UserFileNotFound(rel)
    if not folder.is_dir():
        raise UnsafePath("not a directory")
    entries: list[dict] = []
    for entry in os.scandir(folder):
        real = Path(os.path.realpath(entry.path))
        if not is_inside(real_root, real):
            continue
        rel_path = (folder / entry.name).relative_to(real_root).as_posix()
        if real.is_dir():
            entries.append({"name": entry.name, "path": rel_path, "type": "directory"})
        elif real.is_file():
            st = real.stat()
            entries.append({"name": entry.name, "path": rel_path, "type": "file",
                            "size": st.st_size, "modified": st.st_mtime})
    entries.sort(key=lambda e: (e["type"] != "directory", e["name"].lower()))
    return entries


def existing_file(root: Path, rel: str) -> Path:
    path = user_path(root, rel)
    if not path.is_file():
        raise UserFileNotFound(rel)
    return path


def write_file(*, root: Path, rel: str, data: bytes, overwrite: bool) -> Path:
    path = user_path(root, rel)
    if path.is_dir():
        raise UnsafePath("a directory has that name")
    if not overwrite and path.exists():
        raise UserFileExists(rel)
    write_atomically(path, data)
    return path


def delete_file(*, root: Path, rel: str) -> None:
    existing_file(root, rel).unlink()


def move_file(*, root: Path, source: str, dest: str, overwrite: bool) -> Path:
    src = existing_file(root, source)
    target = user_path(root, dest)
    if target.is_dir():
        raise UnsafePath("a directory has that name")
    if not overwrite and target.exists():
        raise UserFileExists(dest)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(src, target)
    return target
