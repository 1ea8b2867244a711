"""What custom node packs (and the bundled frontend) contribute besides node classes:
extension scripts, translations, subgraph blueprints, example workflows, folder paths.

Read from disk when asked: packs are folders under `<base>/custom_nodes` (and any extra
`custom_nodes` path registered with folder_paths); these listings are small and rarely asked
for, so nothing is cached that could go stale while a user edits a pack.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opencomfy.config import Config
    from opencomfy.engine import NodeRegistry

log = logging.getLogger(__name__)

#: Folder names ComfyUI looks in for a pack's example workflows, in order of preference.
EXAMPLE_WORKFLOW_DIRS = ("example_workflows", "example", "examples", "workflow", "workflows")
#: Translation files of a locale folder, and the key each is merged under (None: top level).
LOCALE_FILES = (("main.json", None), ("nodeDefs.json", "nodeDefs"),
                ("commands.json", "commands"), ("settings.json", "settings"))


def _folder_paths():
    """The compat `folder_paths` module, or None while it is not importable."""
    try:
        from opencomfy.compat import folder_paths
    except Exception:
        return None
    return folder_paths


def frontend_root(config: "Config") -> Path:
    """The frontend's static folder: --front-end-root, else the pinned package's `static/`."""
    if config.front_end_root is not None:
        return Path(config.front_end_root).resolve()
    import importlib.resources

    return Path(str(importlib.resources.files("comfyui_frontend_package") / "static"))


def custom_node_roots(config: "Config") -> list[Path]:
    """Every folder that holds custom node packs."""
    roots = [config.custom_nodes_dir]
    fp = _folder_paths()
    if fp is not None:
        try:
            roots += [Path(p) for p in fp.get_folder_paths("custom_nodes")]
        except Exception:
            pass
    seen: list[Path] = []
    for root in roots:
        root = root.resolve()
        if root not in seen:
            seen.append(root)
    return seen


def pack_dirs(config: "Config") -> list[Path]:
    """Pack folders, sorted by name (hidden, disabled and cache folders skipped; with
    --disable-all-custom-nodes only the whitelisted ones)."""
    from opencomfy.compat.loader import is_selected

    whitelist = getattr(config, "whitelist_custom_nodes", ())
    if config.disable_all_custom_nodes and not whitelist:
        return []
    found: list[Path] = []
    for root in custom_node_roots(config):
        try:
            children = sorted(root.iterdir(), key=lambda p: p.name)
        except OSError:
            continue
        for child in children:
            name = child.name
            if (name.startswith(".") or name == "__pycache__" or name.endswith(".disabled")
                    or not child.is_dir()
                    or not is_selected(child, disable_all=config.disable_all_custom_nodes,
                                       whitelist=whitelist)):
                continue
            found.append(child)
    return found


def confined_file(root: Path, relative: str) -> Path | None:
    """`root/relative` if it is an existing file inside `root` (symlinks resolved), else None."""
    if "\x00" in relative or "\\" in relative or relative.startswith("/"):
        return None
    try:
        root = root.resolve()
        path = (root / relative).resolve()
    except (OSError, ValueError):
        return None
    if not path.is_relative_to(root) or not path.is_file():
        return None
    return path


# -- /extensions -----------------------------------------------------------------------------

@functools.cache
def _frontend_extension_urls(web_root: Path) -> tuple[str, ...]:
    """The frontend's bundled extension scripts (a pinned package: listed once)."""
    ext_root = web_root / "extensions"
    if not ext_root.is_dir():
        return ()
    return tuple(sorted("/" + p.relative_to(web_root).as_posix() for p in ext_root.rglob("*.js")))


def extension_urls(config: "Config", registry: "NodeRegistry") -> list[str]:
    """The frontend's own extension scripts (as ComfyUI lists them; the frontend skips
    `extensions/core`) and every .js under each pack's WEB_DIRECTORY."""
    urls = list(_frontend_extension_urls(frontend_root(config)))
    for pack, directory in sorted(getattr(registry, "web_directories", {}).items()):
        directory = Path(directory)
        if not directory.is_dir():
            continue
        urls += sorted(f"/extensions/{pack}/{p.relative_to(directory).as_posix()}"
                       for p in directory.rglob("*.js"))
    return urls


# -- /i18n -----------------------------------------------------------------------------------

def _deep_merge(into: dict, new: dict) -> None:
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _deep_merge(into[key], value)
        else:
            into[key] = value


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        log.warning("skipping unreadable %s: %s", path, exc)
        return None


def translations(config: "Config") -> dict[str, dict]:
    """`{locale: {...main.json, nodeDefs, commands, settings}}` merged over every pack's
    `locales/<locale>/` folder."""
    merged: dict[str, dict] = {}
    for pack in pack_dirs(config):
        locales = pack / "locales"
        if not locales.is_dir():
            continue
        for lang_dir in sorted(p for p in locales.iterdir() if p.is_dir()):
            target = merged.setdefault(lang_dir.name, {})
            for filename, key in LOCALE_FILES:
                path = lang_dir / filename
                if not path.is_file():
                    continue
                data = _read_json(path)
                if not isinstance(data, dict):
                    continue
                _deep_merge(target if key is None else target.setdefault(key, {}), data)
    return merged


# -- /node_replacements ----------------------------------------------------------------------

def node_replacements(registry: "NodeRegistry") -> dict[str, Any]:
    """Replacement suggestions for missing classes; a registry may offer some, else none."""
    offered = getattr(registry, "node_replacements", None)
    if callable(offered):
        offered = offered()
    return dict(offered) if isinstance(offered, dict) else {}


# -- /global_subgraphs -----------------------------------------------------------------------

@dataclass(frozen=True)
class SubgraphBlueprint:
    """A subgraph JSON a pack ships in its `subgraphs/` folder."""

    source: str
    name: str
    node_pack: str
    path: Path

    def summary(self) -> dict[str, Any]:
        return {"source": self.source, "name": self.name, "info": {"node_pack": self.node_pack}}

    def read(self) -> str:
        return self.path.read_text(encoding="utf-8")


def subgraph_blueprints(config: "Config") -> dict[str, SubgraphBlueprint]:
    """`{id: blueprint}`; ids are stable hashes of the pack and the file's relative path."""
    found: dict[str, SubgraphBlueprint] = {}
    for pack in pack_dirs(config):
        folder = pack / "subgraphs"
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*.json")):
            relative = path.relative_to(folder).as_posix()
            key = hashlib.sha256(f"custom_node/{pack.name}/{relative}".encode()).hexdigest()
            found[key] = SubgraphBlueprint(source="custom_node", name=path.stem,
                                           node_pack=pack.name, path=path)
    return found


# -- /workflow_templates ---------------------------------------------------------------------

def workflow_template_dirs(config: "Config") -> dict[str, tuple[Path, list[str]]]:
    """`{pack: (folder, [workflow names without .json])}` for packs with example workflows."""
    found: dict[str, tuple[Path, list[str]]] = {}
    for pack in pack_dirs(config):
        for candidate in EXAMPLE_WORKFLOW_DIRS:
            folder = pack / candidate
            if not folder.is_dir():
                continue
            names = sorted(p.stem for p in folder.glob("*.json") if p.is_file())
            if names:
                found[pack.name] = (folder, names)
                break
    return found


# -- /internal/folder_paths ---------------------------------------------------------------------------------

def folder_paths_listing() -> dict[str, list[list[str]]]:
    """`{folder: [[paths...], [extensions...]]}` as the spec's `/internal/folder_paths`."""
    fp = _folder_paths()
    mapping = getattr(fp, "folder_names_and_paths", None) if fp is not None else None
    listing: dict[str, list[list[str]]] = {}
    for name, value in (mapping or {}).items():
        paths, extensions = (list(value[0]), sorted(value[1])) if len(value) > 1 else (
            list(value[0]), [])
        listing[name] = [[os.fspath(p) for p in paths], [str(e) for e in extensions]]
    return listing
