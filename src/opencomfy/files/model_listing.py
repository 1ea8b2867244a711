"""Model folders as ComfyUI's `folder_paths` knows them (including extra_model_paths.yaml and
folders custom nodes add), for /models, /embeddings and /experiment/models."""

from __future__ import annotations

import base64
import io
import json
import os
import struct
from pathlib import Path

from opencomfy.compat import folder_paths
from opencomfy.files.paths import UnsafePath, check_relative, is_inside

# Not model folders, though folder_paths lists them (as ComfyUI's model manager skips them).
_HIDDEN_FOLDERS = {"configs", "custom_nodes"}
_PREVIEW_EXTENSIONS = (".webp", ".png", ".jpg", ".jpeg", ".gif")
_SAFETENSORS_HEADER_LIMIT = 8 * 1024 * 1024


class UnknownFolder(LookupError):
    """No model folder of that name."""


def folder_names() -> list[str]:
    """The kinds of model folders (`checkpoints`, `loras`, ...)."""
    return [name for name in folder_paths.folder_names_and_paths if name not in _HIDDEN_FOLDERS]


def model_folders() -> list[dict]:
    """The spec's ModelFolder list: each kind with the folders it is read from."""
    return [{"name": name, "folders": folder_paths.get_folder_paths(name)} for name in folder_names()]


def _check_folder(folder: str) -> str:
    if folder in _HIDDEN_FOLDERS:
        raise UnknownFolder(folder)
    name = folder_paths.map_legacy(folder)
    if name not in folder_paths.folder_names_and_paths:
        raise UnknownFolder(folder)
    return name


def filenames(folder: str) -> list[str]:
    """Model file names of one kind, relative to their folder (ComfyUI's get_filename_list)."""
    return folder_paths.get_filename_list(_check_folder(folder))


def embedding_names() -> list[str]:
    """Embedding names without their extension, as prompts write them (`embedding:name`)."""
    try:
        names = folder_paths.get_filename_list("embeddings")
    except KeyError:
        return []
    return [os.path.splitext(name)[0] for name in names]


def model_files(folder: str) -> list[dict]:
    """The spec's ModelFile list: `{name, pathIndex, modified, created, size}` for every file
    of the folder's extensions, in every folder of that kind (pathIndex says which)."""
    name = _check_folder(folder)
    paths, extensions = folder_paths.folder_names_and_paths[name]
    out: list[dict] = []
    for index, directory in enumerate(paths):
        files, _ = folder_paths.recursive_search(directory, excluded_dir_names=[".git"])
        for rel in sorted(folder_paths.filter_files_extensions(files, extensions)):
            try:
                st = os.stat(os.path.join(directory, rel))
            except OSError:
                continue
            out.append({"name": rel.replace(os.sep, "/"), "pathIndex": index,
                        "modified": st.st_mtime, "created": st.st_ctime, "size": st.st_size})
    return out


def _safetensors_header(path: str) -> dict | None:
    """The JSON header of a safetensors file (bounded read), or None."""
    try:
        with open(path, "rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            if length > _SAFETENSORS_HEADER_LIMIT:
                return None
            header = json.loads(f.read(length))
    except (OSError, struct.error, ValueError):
        return None
    return header if isinstance(header, dict) else None


def _embedded_thumbnail(path: str) -> bytes | None:
    """`modelspec.thumbnail` (a data: URL) from a safetensors header, if there is one."""
    url = ((_safetensors_header(path) or {}).get("__metadata__") or {}).get("modelspec.thumbnail")
    if not isinstance(url, str) or not url.startswith("data:") or "," not in url:
        return None
    try:
        return base64.b64decode(url.split(",", 1)[1])
    except ValueError:
        return None


def _confined_model_path(folder: str, path_index: int, filename: str) -> tuple[str, str]:
    """(resolved folder root, resolved path of `filename` in it); refuses escapes."""
    name = _check_folder(folder)
    check_relative(filename)
    paths = folder_paths.folder_names_and_paths[name][0]
    if not 0 <= path_index < len(paths):
        raise UnknownFolder(f"{folder}/{path_index}")
    root = os.path.realpath(paths[path_index])
    path = os.path.realpath(os.path.join(root, filename))
    if not is_inside(root, path):
        raise UnsafePath("path leaves its folder")
    return root, path


def model_preview(*, folder: str, path_index: int, filename: str) -> bytes | None:
    """A model's preview image as WebP, None when it has none.

    The frontend asks for `<model stem>.webp` whatever the model's extension, so the model is
    found by its stem: a picture beside it (`x.png`, `x.preview.png`, ...) or the thumbnail in
    the metadata of `x.safetensors`.
    """
    from PIL import Image, UnidentifiedImageError

    root, path = _confined_model_path(folder, path_index, filename)
    stem = os.path.splitext(path)[0]
    candidates = [stem + ext for ext in _PREVIEW_EXTENSIONS]
    candidates += [stem + ".preview" + ext for ext in _PREVIEW_EXTENSIONS]
    source: bytes | None = None
    for candidate in candidates:
        real = os.path.realpath(candidate)
        if is_inside(root, real) and os.path.isfile(real):
            source = Path(real).read_bytes()
            break
    else:
        weights = os.path.realpath(stem + ".safetensors")
        if is_inside(root, weights) and os.path.isfile(weights):
            source = _embedded_thumbnail(weights)
    if source is None:
        return None
    try:
        with Image.open(io.BytesIO(source)) as img:
            out = io.BytesIO()
            img.convert("RGBA" if "A" in img.getbands() else "RGB").save(out, format="WEBP", quality=80)
            return out.getvalue()
    except (UnidentifiedImageError, OSError, ValueError):
        return None


def model_metadata(*, folder: str, filename: str) -> dict | None:
    """The `__metadata__` of a safetensors model (ComfyUI's /view_metadata), None without."""
    if not filename.endswith(".safetensors"):
        return None
    name = _check_folder(folder)
    check_relative(filename)
    for root in folder_paths.folder_names_and_paths[name][0]:
        real_root = os.path.realpath(root)
        path = os.path.realpath(os.path.join(real_root, filename))
        if is_inside(real_root, path) and os.path.isfile(path):
            metadata = (_safetensors_header(path) or {}).get("__metadata__")
            return metadata if isinstance(metadata, dict) else None
    return None
