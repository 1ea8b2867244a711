"""ComfyUI's ``folder_paths`` module: where models, inputs, outputs and temp files live.

Custom nodes import this module as ``folder_paths`` and read its globals directly
(``folder_names_and_paths``, ``models_dir``, ``output_directory`` ...), so the state is
module-level exactly as in ComfyUI. The server calls :func:`configure` once at start.

Differences from ComfyUI, all on the safe side:
- paths escaping their base folder (``../``) are refused by the annotated-path helpers;
- :func:`get_save_image_path` keeps the file counter in memory per folder and prefix, and
  lists the folder again only when something other than our own save nodes changed it;
- with ``--auth required`` (``configure(per_workspace=True)``) the input, output and temp
  directories are those of the running job's (or request's) workspace, each a sub-folder of
  the configured root (see ``opencomfy.files.workspace_roots``). ``get_input_directory()``
  and the module attributes ``input_directory``, ``output_directory``, ``temp_directory``
  all answer per workspace, so every node and custom node that finds files through this
  module is confined to its own workspace's files.
"""

from __future__ import annotations

import logging
import mimetypes
import os
import threading
import sys
import time
import types
from collections.abc import Collection, Iterable

from opencomfy.compat.save_paths import (  # noqa: F401  (part of this module's API)
    SaveTarget, claim_save_counter, forget_save_counters, get_save_image_path, note_saved,
    resolve_save_target)
from opencomfy.files import workspace_roots
from opencomfy.nodes.image_save_counters import recently_changed

log = logging.getLogger(__name__)

supported_pt_extensions: set[str] = {
    ".ckpt", ".pt", ".pt2", ".bin", ".pth", ".safetensors", ".pkl", ".sft",
}

# name -> (folders, extensions); an empty extension set means "every file".
folder_names_and_paths: dict[str, tuple[list[str], set[str] | list[str]]] = {}

base_path: str = os.getcwd()
models_dir: str = os.path.join(base_path, "models")
user_directory: str = os.path.join(base_path, "user")
# The configured roots of the three file folders. The module attributes `output_directory`,
# `input_directory` and `temp_directory` are properties (see _FolderPathsModule) that add
# the current workspace's sub-folder in the per-workspace layout.
_roots: dict[str, str] = {kind: os.path.join(base_path, kind)
                          for kind in ("output", "input", "temp")}
# Workspace folders already created (each is made on first use, so listings never fail).
_made: set[str] = set()

# folder name -> (sorted relative file names, {directory: mtime}, time of the listing)
filename_list_cache: dict[str, tuple[list[str], dict[str, float], float]] = {}

extension_mimetypes_cache: dict[str, str] = {"webp": "image"}

_LEGACY_NAMES = {"unet": "diffusion_models", "clip": "text_encoders"}

# (folder name, sub-folders of models_dir) in ComfyUI's order; the first is the default.
_MODEL_FOLDERS: tuple[tuple[str, tuple[str, ...], str | set[str] | list[str]], ...] = (
    ("checkpoints", ("checkpoints",), "pt"),
    ("configs", ("configs",), [".yaml"]),
    ("loras", ("loras",), "pt"),
    ("vae", ("vae",), "pt"),
    ("text_encoders", ("text_encoders", "clip"), "pt"),
    ("diffusion_models", ("unet", "diffusion_models"), "pt"),
    ("clip_vision", ("clip_vision",), "pt"),
    ("style_models", ("style_models",), "pt"),
    ("embeddings", ("embeddings",), "pt"),
    ("diffusers", ("diffusers",), ["folder"]),
    ("vae_approx", ("vae_approx",), "pt"),
    ("controlnet", ("controlnet", "t2i_adapter"), "pt"),
    ("gligen", ("gligen",), "pt"),
    ("upscale_models", ("upscale_models",), "pt"),
    ("latent_upscale_models", ("latent_upscale_models",), "pt"),
    ("hypernetworks", ("hypernetworks",), "pt"),
    ("photomaker", ("photomaker",), "pt"),
    ("classifiers", ("classifiers",), {""}),
    ("model_patches", ("model_patches",), "pt"),
    ("audio_encoders", ("audio_encoders",), "pt"),
)

_lock = threading.RLock()


def _default_folders() -> dict[str, tuple[list[str], set[str] | list[str]]]:
    folders: dict[str, tuple[list[str], set[str] | list[str]]] = {}
    for name, subdirs, extensions in _MODEL_FOLDERS:
        exts = supported_pt_extensions if isinstance(extensions, str) else extensions  # "pt"
        folders[name] = ([os.path.join(models_dir, d) for d in subdirs], exts)
    folders["custom_nodes"] = ([os.path.join(base_path, "custom_nodes")], set())
    return folders


def configure(*, base_directory, output_directory=None, input_directory=None,
              temp_directory=None, user_directory=None, models_directory=None,
              per_workspace: bool = False) -> None:
    """Point every folder at the server's layout (called once by the server at start).

    Rebuilds ``folder_names_and_paths`` in place (custom nodes may hold a reference to it)
    and forgets every cached listing and save counter. ``per_workspace`` (``--auth
    required``) gives each workspace its own input, output and temp folder.
    """
    global base_path, models_dir
    base = os.path.abspath(os.fspath(base_directory))
    with _lock:
        workspace_roots.set_per_workspace(per_workspace)
        _made.clear()
        base_path = base
        models_dir = os.path.abspath(os.fspath(models_directory)) if models_directory \
            else os.path.join(base, "models")
        set_output_directory(output_directory or os.path.join(base, "output"))
        set_input_directory(input_directory or os.path.join(base, "input"))
        set_temp_directory(temp_directory or os.path.join(base, "temp"))
        set_user_directory(user_directory or os.path.join(base, "user"))
        folder_names_and_paths.clear()
        folder_names_and_paths.update(_default_folders())
        filename_list_cache.clear()
        cache_helper.clear()
        forget_save_counters()


def map_legacy(folder_name: str) -> str:
    """Old folder names still used by custom nodes ("unet", "clip") -> the current ones."""
    return _LEGACY_NAMES.get(folder_name, folder_name)


# --- the four data directories -----------------------------------------------------------

def set_output_directory(output_dir: str) -> None:
    """Set the output root (the shared folder; per workspace, the parent of theirs)."""
    _roots["output"] = os.path.abspath(os.fspath(output_dir))


def set_temp_directory(temp_dir: str) -> None:
    _roots["temp"] = os.path.abspath(os.fspath(temp_dir))


def set_input_directory(input_dir: str) -> None:
    _roots["input"] = os.path.abspath(os.fspath(input_dir))


def set_user_directory(user_dir: str) -> None:
    global user_directory
    user_directory = os.path.abspath(os.fspath(user_dir))


def _scoped(kind: str) -> str:
    """The folder of `kind` for the current workspace (the root itself in the shared layout).

    Per workspace, the folder is created on first use: custom nodes list it without checking.
    """
    root = _roots[kind]
    if not workspace_roots.per_workspace():
        return root
    path = workspace_roots.scoped_root(root, workspace_roots.current_workspace())
    if path not in _made:
        try:
            os.makedirs(path, exist_ok=True)
            _made.add(path)
        except OSError:
            log.warning("could not create the workspace folder %s", path, exc_info=True)
    return path


def get_output_directory() -> str:
    return _scoped("output")


def get_temp_directory() -> str:
    return _scoped("temp")


def get_input_directory() -> str:
    return _scoped("input")


def get_root_directory(type_name: str) -> str:
    """The configured root of "input", "output" or "temp", whatever the workspace (server use:
    wiping temp, migrating files). Nodes use the ``get_*_directory`` functions instead."""
    return _roots[type_name]


def get_user_directory() -> str:
    return user_directory


def get_directory_by_type(type_name: str) -> str | None:
    """The folder for a file ``type`` ("output", "temp", "input"); None for anything else.

    Used by the HTTP server to serve files, so it must never name another folder.
    """
    if type_name == "output":
        return get_output_directory()
    if type_name == "temp":
        return get_temp_directory()
    if type_name == "input":
        return get_input_directory()
    return None


def get_input_subfolders() -> list[str]:
    """Every sub-folder of the input directory, relative and with "/" separators."""
    root = get_input_directory()
    found: list[str] = []
    if not os.path.isdir(root):
        return found
    for current, dirs, _files in os.walk(root):
        dirs.sort()
        for d in dirs:
            found.append(os.path.relpath(os.path.join(current, d), root).replace(os.sep, "/"))
    return found


def get_system_user_directory(name: str = "default") -> str:
    """A directory for server-side data that users cannot reach (ComfyUI's ``__name``)."""
    if not name or not isinstance(name, str):
        raise ValueError("System User name cannot be empty")
    if not name.replace("_", "").isalnum():
        raise ValueError(f"Invalid system user name: '{name}'")
    return os.path.join(get_user_directory(), f"__{name}")


# --- annotated file names: "name.png [output]" --------------------------------------------

_ANNOTATIONS = (("[output]", get_output_directory), ("[input]", get_input_directory),
                ("[temp]", get_temp_directory))


def annotated_filepath(name: str) -> tuple[str, str | None]:
    """Split ``"file.png [output]"`` into the name and the folder its annotation names."""
    for tag, directory in _ANNOTATIONS:
        if name.endswith(tag):
            stripped = name[: -len(tag)]
            # ComfyUI writes "name [tag]"; drop the one separating space.
            if stripped.endswith(" "):
                stripped = stripped[:-1]
            return stripped, directory()
    return name, None


def _inside(base_dir: str, path: str) -> bool:
    base = os.path.abspath(base_dir)
    try:
        return os.path.commonpath((base, os.path.abspath(path))) == base
    except ValueError:  # different drives on Windows
        return False


def get_annotated_filepath(name: str, default_dir: str | None = None) -> str:
    """The full path of an annotated name; the input folder when it has no annotation.

    Raises ``ValueError`` for a name that would leave its folder (``../secret``).
    """
    name, base_dir = annotated_filepath(name)
    if base_dir is None:
        base_dir = default_dir if default_dir is not None else get_input_directory()
    path = os.path.join(base_dir, name)
    if not _inside(base_dir, path):
        raise ValueError(f"Invalid file path: {name}")
    return path


def exists_annotated_filepath(name) -> bool:
    """Whether the file an annotated name points at exists (False when it leaves its folder)."""
    name, base_dir = annotated_filepath(name)
    if base_dir is None:
        base_dir = get_input_directory()
    path = os.path.join(base_dir, name)
    return _inside(base_dir, path) and os.path.exists(path)


# --- model folders ------------------------------------------------------------------------

def add_model_folder_path(folder_name: str, full_folder_path: str, is_default: bool = False) -> None:
    """Add a folder to a model kind (first place when ``is_default``); a new kind if unknown."""
    folder_name = map_legacy(folder_name)
    full_folder_path = os.fspath(full_folder_path)
    with _lock:
        if folder_name in folder_names_and_paths:
            paths = folder_names_and_paths[folder_name][0]
            if full_folder_path in paths:
                if is_default:  # move it to the front rather than listing it twice
                    paths.remove(full_folder_path)
                    paths.insert(0, full_folder_path)
            elif is_default:
                paths.insert(0, full_folder_path)
            else:
                paths.append(full_folder_path)
        else:
            folder_names_and_paths[folder_name] = ([full_folder_path], set())
        filename_list_cache.pop(folder_name, None)


def get_folder_paths(folder_name: str) -> list[str]:
    """A copy of the folders of a model kind (KeyError for an unknown kind, as ComfyUI)."""
    folder_name = map_legacy(folder_name)
    return folder_names_and_paths[folder_name][0][:]


def recursive_search(directory: str, excluded_dir_names: list[str] | None = None
                     ) -> tuple[list[str], dict[str, float]]:
    """Every file under ``directory`` (relative paths) and the mtime of every folder seen."""
    if not os.path.isdir(directory):
        return [], {}
    excluded = set(excluded_dir_names or ())
    files: list[str] = []
    dirs: dict[str, float] = {}
    try:
        dirs[directory] = os.path.getmtime(directory)
    except FileNotFoundError:
        log.warning("Unable to access %s; skipping this path.", directory)
        return [], {}
    # followlinks: model folders are often symlinks to a shared disk.
    for current, subdirs, names in os.walk(directory, followlinks=True):
        subdirs[:] = [d for d in subdirs if d not in excluded]
        for d in subdirs:
            path = os.path.join(current, d)
            try:
                dirs[path] = os.path.getmtime(path)
            except OSError:
                continue
        for n in names:
            files.append(os.path.relpath(os.path.join(current, n), directory))
    return files, dirs


def filter_files_extensions(files: Collection[str], extensions: Collection[str]) -> list[str]:
    """The files whose extension is listed (all when ``extensions`` is empty), sorted."""
    return sorted(f for f in files
                  if len(extensions) == 0 or os.path.splitext(f)[-1].lower() in extensions)


def filter_files_content_types(files: Iterable[str], content_types) -> list[str]:
    """The files whose MIME type family ("image", "video", "audio", "model") is listed."""
    result = []
    for file in files:
        extension = file.split(".")[-1]
        content_type = extension_mimetypes_cache.get(extension)
        if content_type is None:
            mime_type, _ = mimetypes.guess_type(file, strict=False)
            if not mime_type:
                continue
            content_type = mime_type.split("/")[0]
            extension_mimetypes_cache[extension] = content_type
        if content_type in content_types:
            result.append(file)
    return result


def get_full_path(folder_name: str, filename: str) -> str | None:
    """The full path of a model file, searching the kind's folders in order; None if absent."""
    folder_name = map_legacy(folder_name)
    if folder_name not in folder_names_and_paths:
        return None
    # Anchor at "/" first so that "../x" cannot leave the model folder.
    filename = os.path.relpath(os.path.join("/", filename), "/")
    for folder in folder_names_and_paths[folder_name][0]:
        full_path = os.path.join(folder, filename)
        if os.path.isfile(full_path):
            return full_path
        if os.path.islink(full_path):
            log.warning("path %s exists but doesn't link anywhere, skipping.", full_path)
    return None


def get_full_path_or_raise(folder_name: str, filename: str) -> str:
    full_path = get_full_path(folder_name, filename)
    if full_path is None:
        raise FileNotFoundError(
            f"Model in folder '{folder_name}' with filename '{filename}' not found.")
    return full_path


class CacheHelper:
    """Within a ``with cache_helper:`` block, listings are reused without checking mtimes."""

    def __init__(self):
        self.cache: dict[str, tuple[list[str], dict[str, float], float]] = {}
        self.active = False

    def get(self, key: str, default=None):
        if not self.active:
            return default
        return self.cache.get(key, default)

    def set(self, key: str, value) -> None:
        if self.active:
            self.cache[key] = value

    def clear(self) -> None:
        self.cache.clear()

    def __enter__(self):
        self.active = True
        return self

    def __exit__(self, exc_type, exc_value, traceback):
        self.active = False
        self.clear()


cache_helper = CacheHelper()


def get_filename_list_(folder_name: str) -> tuple[list[str], dict[str, float], float]:
    """List a model kind afresh: (sorted files, {folder: mtime}, time of the listing)."""
    folder_name = map_legacy(folder_name)
    folders, extensions = folder_names_and_paths[folder_name]
    names: set[str] = set()
    mtimes: dict[str, float] = {}
    for folder in folders:
        files, dirs = recursive_search(folder, excluded_dir_names=[".git"])
        names.update(filter_files_extensions(files, extensions))
        mtimes.update(dirs)
    return sorted(names), mtimes, time.perf_counter()


def cached_filename_list_(folder_name: str):
    """The cached listing if no folder under the kind changed since; else None."""
    strong = cache_helper.get(folder_name)
    if strong is not None:
        return strong
    folder_name = map_legacy(folder_name)
    cached = filename_list_cache.get(folder_name)
    if cached is None:
        return None
    for directory, mtime in cached[1].items():
        try:
            if os.path.getmtime(directory) != mtime:
                return None
        except OSError:
            return None
        if recently_changed(mtime):
            return None
    # A configured folder that did not exist at listing time may exist now.
    for folder in folder_names_and_paths[folder_name][0]:
        if folder not in cached[1] and os.path.isdir(folder):
            return None
    return cached


def get_filename_list(folder_name: str) -> list[str]:
    """The model files of a kind (relative paths, sorted); a file added later appears."""
    folder_name = map_legacy(folder_name)
    out = cached_filename_list_(folder_name)
    if out is None:
        out = get_filename_list_(folder_name)
        filename_list_cache[folder_name] = out
    cache_helper.set(folder_name, out)
    return list(out[0])


# The folders are valid (relative to the working directory) even before configure() runs.
folder_names_and_paths.update(_default_folders())


class _FolderPathsModule(types.ModuleType):
    """Custom nodes read ``folder_paths.output_directory`` (and input, temp) as attributes:
    they answer per workspace like the getters, and assigning one sets the root."""

    @property
    def output_directory(self) -> str:
        return get_output_directory()

    @output_directory.setter
    def output_directory(self, value: str) -> None:
        set_output_directory(value)

    @property
    def input_directory(self) -> str:
        return get_input_directory()

    @input_directory.setter
    def input_directory(self, value: str) -> None:
        set_input_directory(value)

    @property
    def temp_directory(self) -> str:
        return get_temp_directory()

    @temp_directory.setter
    def temp_directory(self, value: str) -> None:
        set_temp_directory(value)


sys.modules[__name__].__class__ = _FolderPathsModule
