"""The node registry and the node catalogue (`/object_info`) in ComfyUI's NodeInfo shape."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterator

log = logging.getLogger(__name__)


class NodeRegistry:
    """Node classes by class_type, with their display names and python modules.

    Every class speaks the V1 protocol (`INPUT_TYPES`, `RETURN_TYPES`, `FUNCTION`, ...).
    `version` grows on every change so that catalogue caches know when to rebuild.
    """

    def __init__(self) -> None:
        self.classes: dict[str, type] = {}
        self.display_names: dict[str, str] = {}
        self.python_modules: dict[str, str] = {}
        self._explicit_modules: set[str] = set()
        self.web_directories: dict[str, Path] = {}
        self.version = 0

    def add(self, class_type: str, cls: type, display_name: str | None = None,
            python_module: str | None = None) -> None:
        """Register (or replace) `class_type`.

        `python_module` defaults to the class's `RELATIVE_PYTHON_MODULE`, else `"nodes"`,
        which is what ComfyUI reports for its own nodes.py classes.
        """
        self.classes[class_type] = cls
        if display_name is not None:
            self.display_names[class_type] = display_name
        else:
            self.display_names.pop(class_type, None)
        if python_module is None:
            self._explicit_modules.discard(class_type)
            python_module = str(getattr(cls, "RELATIVE_PYTHON_MODULE", None) or "nodes")
        else:
            self._explicit_modules.add(class_type)
        self.python_modules[class_type] = python_module
        self.version += 1

    def remove(self, class_type: str) -> None:
        self.classes.pop(class_type, None)
        self.display_names.pop(class_type, None)
        self.python_modules.pop(class_type, None)
        self._explicit_modules.discard(class_type)
        self.version += 1

    def add_web_directory(self, name: str, path: Path) -> None:
        self.web_directories[name] = Path(path)
        self.version += 1

    def get(self, class_type: str) -> type | None:
        return self.classes.get(class_type)

    def __contains__(self, class_type: object) -> bool:
        return class_type in self.classes

    def __iter__(self) -> Iterator[str]:
        return iter(self.classes)

    def __len__(self) -> int:
        return len(self.classes)

    def display_name(self, class_type: str) -> str:
        return self.display_names.get(class_type, class_type)

    def node_info(self, class_type: str) -> dict[str, Any]:
        """What ComfyUI's `/object_info` reports for this class (its `node_info`)."""
        cls = self.classes[class_type]
        v1_info = getattr(cls, "GET_NODE_INFO_V1", None)
        if callable(v1_info):  # V3 facades describe themselves, as ComfyUI's V3 classes do
            info: dict[str, Any] = dict(v1_info())  # type: ignore[arg-type]  # a V3 facade's dict
            info.setdefault("name", class_type)
            if class_type in self.display_names:
                info["display_name"] = self.display_names[class_type]
            if class_type in self._explicit_modules or "python_module" not in info:
                info["python_module"] = self.python_modules.get(class_type, "nodes")
            return info
        input_types = cls.INPUT_TYPES()
        return_types = cls.RETURN_TYPES
        info: dict[str, Any] = {
            "input": input_types,
            "input_order": {key: list(value.keys()) for key, value in input_types.items()},
            "output": return_types,
            "output_is_list": getattr(cls, "OUTPUT_IS_LIST", [False] * len(return_types)),
            "output_name": getattr(cls, "RETURN_NAMES", return_types),
            "name": class_type,
            "display_name": self.display_name(class_type),
            "description": getattr(cls, "DESCRIPTION", ""),
            "python_module": self.python_modules.get(class_type, "nodes"),
            "category": getattr(cls, "CATEGORY", "sd"),
            "output_node": bool(getattr(cls, "OUTPUT_NODE", False) == True),  # noqa: E712 (ComfyUI compares with ==)
        }
        if hasattr(cls, "OUTPUT_TOOLTIPS"):
            info["output_tooltips"] = cls.OUTPUT_TOOLTIPS
        if getattr(cls, "DEPRECATED", False):
            info["deprecated"] = True
        if getattr(cls, "EXPERIMENTAL", False):
            info["experimental"] = True
        if hasattr(cls, "API_NODE"):
            info["api_node"] = cls.API_NODE
        return info

    def object_info(self) -> dict[str, dict[str, Any]]:
        """NodeInfo of every class; a class whose INPUT_TYPES raises is logged and left out."""
        out: dict[str, dict[str, Any]] = {}
        for class_type in list(self.classes):
            try:
                out[class_type] = self.node_info(class_type)
            except Exception:
                log.exception("[ERROR] An error occurred while retrieving information for the '%s' node.",
                              class_type)
        return out
