"""What the engine needs to know about a node class, read once per class per prompt."""

from __future__ import annotations

import inspect
import weakref
from typing import Any

HIDDEN_SPECIAL = frozenset({
    "PROMPT", "DYNPROMPT", "EXTRA_PNGINFO", "UNIQUE_ID", "AUTH_TOKEN_COMFY_ORG", "API_KEY_COMFY_ORG",
})


class ClassSpec:
    """A node class's declared inputs and flags, precomputed for the hot paths."""

    __slots__ = (
        "cls", "input_types", "inputs", "lazy_inputs", "raw_link_inputs", "hidden_special",
        "input_is_list", "output_is_list", "return_types", "function", "is_output",
        "has_lazy_status", "has_is_changed", "uses_unique_id", "not_idempotent", "is_async",
    )

    def __init__(self, cls: type, input_types: dict | None = None):
        self.cls = cls
        self.input_types: dict[str, dict] = cls.INPUT_TYPES() if input_types is None else input_types
        # name -> (category, type, options); required wins over optional over hidden
        self.inputs: dict[str, tuple[str, Any, dict]] = {}
        self.lazy_inputs: set[str] = set()
        self.raw_link_inputs: set[str] = set()
        self.hidden_special: dict[str, str] = {}
        for category in ("hidden", "optional", "required"):
            section = self.input_types.get(category) or {}
            for name, info in section.items():
                if category == "hidden" and isinstance(info, str):
                    if info in HIDDEN_SPECIAL:
                        self.hidden_special[name] = info
                    self.inputs[name] = (category, info, {})
                    continue
                input_type, options = _split_info(info)
                self.inputs[name] = (category, input_type, options)
        for name, (_, _, options) in self.inputs.items():
            if options.get("lazy"):
                self.lazy_inputs.add(name)
            if options.get("rawLink"):
                self.raw_link_inputs.add(name)
        self.input_is_list = bool(getattr(cls, "INPUT_IS_LIST", False))
        self.return_types = tuple(getattr(cls, "RETURN_TYPES", ()) or ())
        output_is_list = list(getattr(cls, "OUTPUT_IS_LIST", ()) or ())
        output_is_list += [False] * (len(self.return_types) - len(output_is_list))
        self.output_is_list = output_is_list
        self.function = getattr(cls, "FUNCTION", None)
        self.is_output = bool(getattr(cls, "OUTPUT_NODE", False) == True)  # noqa: E712
        self.has_lazy_status = hasattr(cls, "check_lazy_status")
        self.has_is_changed = hasattr(cls, "IS_CHANGED")
        self.uses_unique_id = "UNIQUE_ID" in self.hidden_special.values()
        self.not_idempotent = bool(getattr(cls, "NOT_IDEMPOTENT", False))
        function = getattr(cls, self.function, None) if isinstance(self.function, str) else None
        self.is_async = function is not None and inspect.iscoroutinefunction(function)

    def input_info(self, name: str) -> tuple[str | None, Any, dict | None]:
        """(category, type, options) of a declared input, or (None, None, None)."""
        return self.inputs.get(name, (None, None, None))


def _split_info(info: Any) -> tuple[Any, dict]:
    if isinstance(info, (tuple, list)):
        if len(info) == 0:
            return None, {}
        options = info[1] if len(info) > 1 and isinstance(info[1], dict) else {}
        return info[0], options
    return info, {}


#: The last ClassSpec built per class, with the registry version it was built under.
#: INPUT_TYPES may change between prompts (a file list), so it is still called once per
#: class per prompt, as in ComfyUI; only when its answer is unchanged is the spec reused
#: instead of rebuilt (the rebuild was most of the cost of validating a small prompt).
_BUILT: "weakref.WeakKeyDictionary[type, tuple[Any, ClassSpec]]" = weakref.WeakKeyDictionary()


def _spec_for(cls: type, version: Any) -> ClassSpec:
    input_types = cls.INPUT_TYPES()
    built = _BUILT.get(cls)
    if built is not None and built[0] == version and _same_declaration(built[1].input_types, input_types):
        return built[1]
    spec = ClassSpec(cls, input_types)
    try:
        _BUILT[cls] = (version, spec)
    except TypeError:  # a class that cannot be weakly referenced: never reused
        pass
    return spec


def _same_declaration(old: Any, new: Any) -> bool:
    if old is new:
        return True
    try:
        return bool(old == new)
    except Exception:  # values that refuse comparison (arrays...): rebuild
        return False


class SpecCache:
    """ClassSpec per class for the duration of one prompt (INPUT_TYPES may change between:
    it is asked once per prompt; an unchanged answer reuses the spec built before)."""

    def __init__(self, registry):
        self.registry = registry
        self._specs: dict[str, ClassSpec] = {}
        self._version = getattr(registry, "version", None)

    def get(self, class_type: str) -> ClassSpec:
        spec = self._specs.get(class_type)
        if spec is None:
            cls = self.registry.get(class_type)
            if cls is None:
                raise KeyError(f"Node class {class_type} does not exist")
            spec = _spec_for(cls, self._version)
            self._specs[class_type] = spec
        return spec


def signature_params(func) -> tuple[list[str], bool]:
    """(named parameters, accepts **kwargs) of a callable, as ComfyUI reads them."""
    try:
        argspec = inspect.getfullargspec(func)
    except TypeError:
        return [], True
    return list(argspec.args) + list(argspec.kwonlyargs), argspec.varkw is not None


def get_input_info(class_def: type, input_name: str, valid_inputs: dict | None = None
                   ) -> tuple[Any, str | None, dict | None]:
    """(input type, category, options) of a declared input, as ComfyUI's `get_input_info`."""
    valid_inputs = valid_inputs or class_def.INPUT_TYPES()
    for category in ("required", "optional", "hidden"):
        section = valid_inputs.get(category) or {}
        if input_name in section:
            info = section[input_name]
            if isinstance(info, (tuple, list)):
                return info[0], category, (info[1] if len(info) > 1 else {})
            return info, category, {}
    return None, None, None
