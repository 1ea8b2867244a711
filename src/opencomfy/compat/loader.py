"""Load custom-node packs the way ComfyUI does (``nodes.py:load_custom_node``).

Every entry of every custom-node folder is a pack: a directory with ``__init__.py`` or a
single ``.py`` file (``*.disabled`` and ``__pycache__`` are skipped). A pack is imported by
path under a module name derived from that path, registered in ``sys.modules`` first so
that its relative imports work. Its nodes come from ``NODE_CLASS_MAPPINGS`` (+ display
names) or, for V3 packs, from ``comfy_entrypoint()`` -> ``ComfyExtension.get_node_list()``.
A pack that fails is logged, reported and skipped; a pack never replaces a core class.

Around that, ComfyUI's start-up order: every selected pack's ``prestartup_script.py`` runs
before any pack is imported (timed, failures logged, never fatal); ``--disable-all-custom-nodes``
skips every pack not named by ``--whitelist-custom-nodes``; a pack's ``install.py`` is never
run (ComfyUI does not run it either: installers such as ComfyUI-Manager do). Packs installed
as Python distributions that declare a ``comfyui.custom_nodes`` entry point (the convention of
the pip-installable ComfyUI fork) load first, then the folders. The log ends with ComfyUI's
"Import times for custom nodes:" block, each failure with its reason.
"""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
import logging
import os
import runpy
import sys
import threading
import time
import tomllib
import traceback
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

MODULE_PARENT = "custom_nodes"
#: The entry-point group of pip-installed packs (the pip-installable ComfyUI fork's).
ENTRY_POINT_GROUP = "comfyui.custom_nodes"


@dataclass
class PackReport:
    """How loading one pack went (listed at start-up like ComfyUI's import times)."""

    name: str
    path: str
    success: bool
    seconds: float
    nodes: list[str] = field(default_factory=list)
    error: str | None = None
    web_directory: str | None = None
    skipped_nodes: list[str] = field(default_factory=list)
    node_errors: dict[str, str] = field(default_factory=dict)
    #: "folder" (custom_nodes/<name>) or "entry_point" (a pip-installed distribution).
    source: str = "folder"

    def as_dict(self) -> dict:
        return {"name": self.name, "path": self.path, "success": self.success,
                "source": self.source,
                "seconds": round(self.seconds, 4), "nodes": self.nodes, "error": self.error,
                "web_directory": self.web_directory, "skipped_nodes": self.skipped_nodes,
                "node_errors": self.node_errors}


class PackLoadError(Exception):
    """A pack imported but does not provide nodes the way ComfyUI expects."""


def pack_name(path: str | os.PathLike) -> str:
    """ComfyUI's module name of a pack: the folder name, or the file name without ``.py``."""
    path = Path(path)
    return path.stem if path.is_file() else path.name


def module_name_for(path: str | os.PathLike) -> str:
    """The ``sys.modules`` key of a pack: its absolute path with dots replaced, as ComfyUI."""
    path = os.path.abspath(os.fspath(path))
    if os.path.isfile(path):
        path = os.path.splitext(path)[0]
    return path.replace(".", "_x_")


def discover_packs(folders: list[str]) -> list[Path]:
    """The pack paths under ``folders``, in ComfyUI's order (folder by folder, sorted)."""
    packs: list[Path] = []
    for folder in folders:
        try:
            names = sorted(os.listdir(folder))
        except OSError:
            continue
        for name in names:
            if name == "__pycache__" or name.startswith(".") or name.endswith(".disabled"):
                continue
            path = Path(folder) / name
            if path.is_file() and path.suffix != ".py":
                continue
            packs.append(path)
    return packs


def is_selected(path: Path | str, *, disable_all: bool, whitelist: tuple[str, ...] | list[str]) -> bool:
    """Whether a pack loads: every pack, or with ``--disable-all-custom-nodes`` only those
    named by ``--whitelist-custom-nodes`` (the folder or file name, ``.py`` optional)."""
    if not disable_all:
        return True
    entry = Path(path).name
    return entry in whitelist or pack_name(path) in whitelist or Path(entry).stem in whitelist


def select_packs(packs: list[Path], *, disable_all: bool = False,
                 whitelist: tuple[str, ...] | list[str] = (), skip=None) -> list[Path]:
    """The packs that load; each one left out is logged as ComfyUI logs it.

    ``skip(path)`` may refuse more (ComfyUI-Manager refuses a copy of its legacy self)."""
    selected = []
    for pack in packs:
        if not is_selected(pack, disable_all=disable_all, whitelist=whitelist):
            log.info("Skipping %s due to disable_all_custom_nodes and whitelist_custom_nodes",
                     pack.name)
        elif skip is not None and _refused(skip, pack):
            log.info("Skipping %s: disabled by ComfyUI-Manager's policy", pack.name)
        else:
            selected.append(pack)
    return selected


def _refused(skip, pack: Path) -> bool:
    try:
        return bool(skip(str(pack)))
    except Exception:
        log.exception("could not ask whether %s should be skipped", pack)
        return False


def run_prestartup_scripts(packs: list[Path]) -> list[tuple[float, str, bool]]:
    """Run each pack's ``prestartup_script.py`` before any pack is imported.

    A script that fails is logged with its traceback and the next one runs. Returns
    ``(seconds, pack path, success)`` per script, and logs ComfyUI's "Prestartup times"
    block."""
    times: list[tuple[float, str, bool]] = []
    for pack in packs:
        script = pack / "prestartup_script.py"
        if not (pack.is_dir() and script.is_file()):
            continue
        started = time.perf_counter()
        success = True
        try:
            runpy.run_path(str(script), run_name=f"{pack_name(pack)}.prestartup_script")
        except (Exception, SystemExit):  # a script calling sys.exit() must not stop start-up
            success = False
            log.exception("Failed to execute startup-script: %s", script)
        times.append((time.perf_counter() - started, str(pack), success))
    if times:
        lines = [f"{seconds:6.1f} seconds{'' if ok else ' (PRESTARTUP FAILED)'}: {path}"
                 for seconds, path, ok in sorted(times)]
        log.info("Prestartup times for custom nodes:\n%s\n", "\n".join(lines))
    return times


def note_install_scripts(packs: list[Path]) -> list[str]:
    """Packs shipping an ``install.py``: never run here, only named so the operator knows."""
    found = [str(pack) for pack in packs if pack.is_dir() and (pack / "install.py").is_file()]
    for path in found:
        log.info("%s has an install.py; opencomfy does not run it (neither does ComfyUI): "
                 "install the pack's requirements yourself", path)
    return found


def _forget_modules(module_name: str) -> None:
    # A pack loaded again (a second registry in one process) must not reuse stale submodules.
    prefix = module_name + "."
    for key in [k for k in sys.modules if k == module_name or k.startswith(prefix)]:
        del sys.modules[key]


def import_pack(path: Path):
    """Import one pack by path; return the module (raises whatever the pack raises)."""
    module_name = module_name_for(path)
    if path.is_file():
        spec = importlib.util.spec_from_file_location(module_name, path)
    else:
        init = path / "__init__.py"
        if not init.is_file():
            raise PackLoadError(f"{path} has no __init__.py")
        spec = importlib.util.spec_from_file_location(module_name, init)
    if spec is None or spec.loader is None:
        raise PackLoadError(f"cannot import {path}")
    _forget_modules(module_name)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return module


def _web_directory(module, pack_dir: Path) -> Path | None:
    """``WEB_DIRECTORY`` of the module, else pyproject's ``[tool.comfy] web``."""
    found = None
    pyproject = pack_dir / "pyproject.toml"
    if pyproject.is_file():
        try:
            web = tomllib.loads(pyproject.read_text(encoding="utf-8")) \
                .get("tool", {}).get("comfy", {}).get("web")
        except (OSError, tomllib.TOMLDecodeError, AttributeError):
            web = None
        if isinstance(web, str) and (pack_dir / web).is_dir():
            found = (pack_dir / web).resolve()
    web_dir = getattr(module, "WEB_DIRECTORY", None)
    if web_dir is not None:
        candidate = (pack_dir / str(web_dir)).resolve()
        if candidate.is_dir():
            found = candidate
    return found


def register_node_class(registry, class_type: str, cls, *, python_module: str,
                        display_name: str | None = None) -> None:
    """Add a V1 class, or the V1 facade of a V3 class, to the registry."""
    from opencomfy.compat.comfy_api.latest._io_node import is_v3_node
    from opencomfy.compat.v3_facade import is_facade, make_v1_facade

    if is_v3_node(cls) and not is_facade(cls):
        if display_name is None:
            display_name = cls.GET_SCHEMA().display_name
        cls = make_v1_facade(cls, python_module=python_module)
    else:
        try:
            cls.RELATIVE_PYTHON_MODULE = python_module
        except (AttributeError, TypeError):
            pass
    registry.add(class_type, cls, display_name=display_name, python_module=python_module)


def run_coroutine(coro):
    """Run ``coro`` to completion from sync code, even when this thread's loop is running."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    result: dict = {}

    def target() -> None:
        try:
            result["value"] = asyncio.run(coro)
        except BaseException as exc:  # handed back to the caller's thread
            result["error"] = exc

    thread = threading.Thread(target=target, name="custom-node-entrypoint")
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result.get("value")


async def _v3_node_list(entrypoint) -> list:
    from opencomfy.compat.comfy_api.latest._api import ComfyExtension

    extension = await entrypoint() if inspect.iscoroutinefunction(entrypoint) else entrypoint()
    if inspect.isawaitable(extension):
        extension = await extension
    if not isinstance(extension, ComfyExtension):
        raise PackLoadError("comfy_entrypoint() did not return a ComfyExtension")
    # ComfyUI awaits both; a pack that wrote them as plain methods is accepted too.
    loaded = extension.on_load()
    if inspect.isawaitable(loaded):
        await loaded
    nodes = extension.get_node_list()
    if inspect.isawaitable(nodes):
        nodes = await nodes
    if not isinstance(nodes, list):
        raise PackLoadError("get_node_list() did not return a list")
    return nodes


def register_pack_nodes(registry, module, report: PackReport, *, core_names: frozenset[str]) -> None:
    """Add the pack's nodes (V1 mappings or V3 entry point); core names are left alone."""
    python_module = f"{MODULE_PARENT}.{report.name}"
    mappings = getattr(module, "NODE_CLASS_MAPPINGS", None)
    if mappings is not None:
        display_names = getattr(module, "NODE_DISPLAY_NAME_MAPPINGS", None) or {}
        for class_type, cls in dict(mappings).items():
            if class_type in core_names:
                report.skipped_nodes.append(class_type)
                log.warning("custom node pack %s tried to replace core node %s; ignored",
                            report.name, class_type)
                continue
            _register_one(registry, report, class_type, cls, python_module,
                          display_names.get(class_type))
        return
    entrypoint = getattr(module, "comfy_entrypoint", None)
    if entrypoint is None:
        raise PackLoadError("Skip module for custom nodes due to the lack of "
                            "NODE_CLASS_MAPPINGS or comfy_entrypoint")
    if not callable(entrypoint):
        raise PackLoadError("comfy_entrypoint is not callable")
    for cls in run_coroutine(_v3_node_list(entrypoint)) or []:
        try:
            schema = cls.GET_SCHEMA()
        except Exception as exc:
            report.node_errors[getattr(cls, "__name__", repr(cls))] = _one_line(exc)
            log.warning("custom node pack %s: node %r has an invalid schema: %s",
                        report.name, cls, exc)
            continue
        if schema.node_id in core_names:
            report.skipped_nodes.append(schema.node_id)
            log.warning("custom node pack %s tried to replace core node %s; ignored",
                        report.name, schema.node_id)
            continue
        _register_one(registry, report, schema.node_id, cls, python_module, schema.display_name)


def _register_one(registry, report: PackReport, class_type: str, cls, python_module: str,
                  display_name: str | None) -> None:
    """Register one node; a node that cannot be (a V3 class with a bad schema) is reported
    and the pack's other nodes still load."""
    try:
        register_node_class(registry, class_type, cls, python_module=python_module,
                            display_name=display_name)
    except Exception as exc:
        report.node_errors[class_type] = _one_line(exc)
        log.warning("custom node pack %s: node %s not loaded: %s", report.name, class_type, exc)
        return
    report.nodes.append(class_type)


def _one_line(exc: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(exc), exc)).strip()


def load_pack(registry, path: Path, *, core_names: frozenset[str]) -> PackReport:
    """Import one pack and register its nodes; never raises for a broken pack."""
    from opencomfy.compat import nodes as compat_nodes

    name = pack_name(path)
    report = PackReport(name=name, path=str(path), success=False, seconds=0.0)
    started = time.perf_counter()
    try:
        module = import_pack(path)
        pack_dir = path if path.is_dir() else path.parent
        compat_nodes.LOADED_MODULE_DIRS[name] = str(pack_dir.resolve())
        web_dir = _web_directory(module, pack_dir)
        if web_dir is not None:
            report.web_directory = str(web_dir)
            compat_nodes.EXTENSION_WEB_DIRS[name] = str(web_dir)
            registry.add_web_directory(name, web_dir)
        register_pack_nodes(registry, module, report, core_names=core_names)
        report.success = True
    except (Exception, SystemExit) as exc:  # a pack calling sys.exit() must not stop the server
        report.error = _one_line(exc)
        log.warning("Cannot import %s module for custom nodes: %s\n%s", path, exc,
                    traceback.format_exc())
    finally:
        report.seconds = time.perf_counter() - started
    return report


def load_entry_point_packs(registry, *, core_names: frozenset[str], disable_all: bool = False,
                           whitelist: tuple[str, ...] | list[str] = ()) -> list[PackReport]:
    """Load the packs that pip-installed distributions declare as ``comfyui.custom_nodes``
    entry points (each names a module with NODE_CLASS_MAPPINGS or comfy_entrypoint)."""
    from importlib.metadata import entry_points

    reports = []
    for entry in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        if disable_all and entry.name not in whitelist:
            log.info("Skipping %s due to disable_all_custom_nodes and whitelist_custom_nodes",
                     entry.name)
            continue
        reports.append(_load_entry_point(registry, entry, core_names=core_names))
    return reports


def _load_entry_point(registry, entry, *, core_names: frozenset[str]) -> PackReport:
    from opencomfy.compat import nodes as compat_nodes

    report = PackReport(name=entry.name, path=entry.value, success=False, seconds=0.0,
                        source="entry_point")
    started = time.perf_counter()
    try:
        module = entry.load()
        if not inspect.ismodule(module):
            raise PackLoadError(f"entry point {entry.value} is not a module")
        module_file = getattr(module, "__file__", None)
        if module_file:
            pack_dir = Path(module_file).parent
            report.path = str(pack_dir)
            compat_nodes.LOADED_MODULE_DIRS[entry.name] = str(pack_dir.resolve())
            web_dir = _web_directory(module, pack_dir)
            if web_dir is not None:
                report.web_directory = str(web_dir)
                compat_nodes.EXTENSION_WEB_DIRS[entry.name] = str(web_dir)
                registry.add_web_directory(entry.name, web_dir)
        register_pack_nodes(registry, module, report, core_names=core_names)
        report.success = True
    except (Exception, SystemExit) as exc:
        report.error = _one_line(exc)
        log.warning("Cannot import entry point %s (%s) for custom nodes: %s\n%s", entry.name,
                    entry.value, exc, traceback.format_exc())
    finally:
        report.seconds = time.perf_counter() - started
    return report


def load_custom_nodes(registry, folders: list[str], *, core_names: frozenset[str],
                      disable_all: bool = False, whitelist: tuple[str, ...] | list[str] = (),
                      entry_points: bool = True, skip=None) -> list[PackReport]:
    """Load every selected pack: prestartup scripts first, then entry-point packs, then the
    folders' packs. Returns one report per pack; the import times are logged."""
    packs = select_packs(discover_packs(folders), disable_all=disable_all, whitelist=whitelist,
                         skip=skip)
    run_prestartup_scripts(packs)
    note_install_scripts(packs)
    reports = []
    if entry_points:
        reports += load_entry_point_packs(registry, core_names=core_names,
                                          disable_all=disable_all, whitelist=whitelist)
    reports += [load_pack(registry, pack, core_names=core_names) for pack in packs]
    log_import_times(reports)
    return reports


def log_import_times(reports: list[PackReport]) -> None:
    """ComfyUI's "Import times for custom nodes:" block, fastest first; each failed pack is
    followed by an indented line with its reason."""
    if not reports:
        return
    lines = []
    for r in sorted(reports, key=lambda r: r.seconds):
        lines.append(f"{r.seconds:6.1f} seconds{'' if r.success else ' (IMPORT FAILED)'}: {r.path}")
        if not r.success:
            lines.append(f"       reason: {r.error}")
    log.info("Import times for custom nodes:\n%s\n", "\n".join(lines))
