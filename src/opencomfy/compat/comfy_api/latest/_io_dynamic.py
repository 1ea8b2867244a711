"""V3 dynamic inputs: ``io.Autogrow`` and ``io.DynamicSlot`` (``io.DynamicCombo`` lives in
``_io_compound``), and the two translations the engine needs for all three.

A dynamic input is one entry of the schema that stands for a varying set of prompt inputs,
named by path: an Autogrow ``values`` with names ``a, b`` is sent as ``values.a``,
``values.b``; a DynamicSlot ``model`` with a nested ``strength`` as ``model`` and
``model.strength``; a DynamicCombo ``mode`` as ``mode`` plus ``mode.<input of the chosen
option>``. Paths nest (an Autogrow inside a combo option is ``mode.values.a``).

- :func:`engine_inputs` turns the object_info description of one input into the flat V1
  inputs the engine validates (every path a plain input);
- :func:`nest_inputs` turns the flat values the engine gathered back into what the node's
  ``execute`` receives, as ComfyUI builds it: an Autogrow gives ``{name: value}`` of the
  names that are present (``{}`` when none), a DynamicSlot gives ``{slot_id: value,
  nested_id: value}`` when its slot is linked (nothing otherwise), a DynamicCombo gives
  ``{combo_id: chosen key, input_id: value}`` with the chosen option's inputs only.

Core nodes describe the same shapes by hand in :mod:`opencomfy.nodes.v3_dynamic`; both give
identical object_info entries (tests/compat/test_loader_dynamic.py checks it).
"""

from __future__ import annotations

import copy
from typing import Callable

from opencomfy.compat.comfy_api.latest._io_types import (
    ComfyTypeI, Input, Output, WidgetInput, comfytype, prune_dict,
)

AUTOGROW = "COMFY_AUTOGROW_V3"
DYNAMIC_SLOT = "COMFY_DYNAMICSLOT_V3"
DYNAMIC_COMBO = "COMFY_DYNAMICCOMBO_V3"
MATCHTYPE = "COMFY_MATCHTYPE_V3"


class DynamicInput(Input):
    """Base of the inputs that stand for a varying set of prompt inputs."""


class DynamicOutput(Output):
    """Base of dynamic outputs (ComfyUI declares it; no core type uses it yet)."""


def _input_dict(inputs: list) -> dict:
    from opencomfy.compat.comfy_api.latest._io_node import create_input_dict_v1

    return create_input_dict_v1(inputs)


@comfytype(io_type=AUTOGROW)
class Autogrow(ComfyTypeI):
    """A group of same-typed inputs that grows as the user links them (``values.a`` ...)."""

    Type = dict
    #: ComfyUI caps a group at this many names.
    _MaxNames = 100

    class _AutogrowTemplate:
        def __init__(self, input: Input) -> None:
            if isinstance(input, DynamicInput):
                raise ValueError("an Autogrow template cannot itself be a dynamic input")
            self.input = copy.copy(input)
            # Every slot of the group is a socket: a widget per slot would be unusable.
            if isinstance(self.input, WidgetInput):
                self.input.force_input = True
            self.names: list[str] = []
            self.cached_inputs: dict[str, Input] = {}

        def _create_cached_inputs(self) -> None:
            for name in self.names:
                slot = copy.copy(self.input)
                slot.id = name
                self.cached_inputs[name] = slot

        def get_all(self) -> list[Input]:
            return list(self.cached_inputs.values())

        def as_dict(self) -> dict:
            return {"input": _input_dict([self.input])}

        def validate(self) -> None:
            self.input.validate()

    class TemplatePrefix(_AutogrowTemplate):
        """Slots named ``<prefix>0``, ``<prefix>1`` ... up to ``max``; the first ``min`` required."""

        def __init__(self, input: Input, prefix: str, min: int = 1, max: int = 10) -> None:
            super().__init__(input)
            if min < 0 or max < 1 or max > Autogrow._MaxNames:
                raise ValueError(f"Autogrow prefix template: need 0 <= min, 1 <= max <= "
                                 f"{Autogrow._MaxNames} (got min={min}, max={max})")
            self.prefix = prefix
            self.min = min
            self.max = max
            self.names = [f"{prefix}{i}" for i in range(max)]
            self._create_cached_inputs()

        def as_dict(self) -> dict:
            return super().as_dict() | {"prefix": self.prefix, "min": self.min, "max": self.max}

    class TemplateNames(_AutogrowTemplate):
        """Slots with the given names, in order; the first ``min`` required."""

        def __init__(self, input: Input, names: list[str], min: int = 1) -> None:
            super().__init__(input)
            if min < 0:
                raise ValueError(f"Autogrow names template: min must be >= 0 (got {min})")
            self.names = list(names)[:Autogrow._MaxNames]
            self.min = min
            self._create_cached_inputs()

        def as_dict(self) -> dict:
            return super().as_dict() | {"names": self.names, "min": self.min}

    class Input(DynamicInput):
        def __init__(self, id: str, template: "Autogrow.TemplatePrefix | Autogrow.TemplateNames",
                     display_name: str | None = None, optional: bool = False,
                     tooltip: str | None = None, lazy: bool | None = None,
                     extra_dict: dict | None = None, **kwargs) -> None:
            super().__init__(id, display_name, optional, tooltip, lazy, extra_dict, **kwargs)
            self.template = template

        def as_dict(self) -> dict:
            return super().as_dict() | prune_dict({"template": self.template.as_dict()})

        def get_all(self) -> list[Input]:
            return [self, *self.template.get_all()]

        def validate(self) -> None:
            self.template.validate()


@comfytype(io_type=DYNAMIC_SLOT)
class DynamicSlot(ComfyTypeI):
    """A socket that, once linked, shows further inputs (``model`` then ``model.strength``)."""

    Type = dict

    class Input(DynamicInput):
        def __init__(self, slot: Input, inputs: list, display_name: str | None = None,
                     tooltip: str | None = None, lazy: bool | None = None,
                     extra_dict: dict | None = None) -> None:
            if isinstance(slot, DynamicInput):
                raise ValueError("a DynamicSlot's slot cannot itself be a dynamic input")
            self.slot = copy.copy(slot)
            if slot.display_name is None:
                self.slot.display_name = display_name
            if slot.tooltip is None:
                self.slot.tooltip = tooltip
            if slot.lazy is None:
                self.slot.lazy = lazy
            if not slot.extra_dict and extra_dict is not None:
                self.slot.extra_dict = extra_dict
            # The slot is optional by nature: unlinked, the node runs without it.
            super().__init__(slot.id, self.slot.display_name, True, self.slot.tooltip,
                             self.slot.lazy, self.slot.extra_dict)
            self.inputs = list(inputs)
            self.force_input = None
            if isinstance(self.slot, WidgetInput):
                self.force_input = True
                self.slot.force_input = True

        def get_all(self) -> list[Input]:
            return [self.slot, *self.inputs]

        def as_dict(self) -> dict:
            return super().as_dict() | prune_dict({
                "slotType": str(self.slot.get_io_type()),
                "inputs": _input_dict(self.inputs),
                "forceInput": self.force_input,
            })

        def validate(self) -> None:
            self.slot.validate()
            for nested in self.inputs:
                nested.validate()


# -- the engine's flat view ----------------------------------------------------------------

def engine_inputs(name: str, io_type: str, options: dict, *, required: bool,
                  out: dict[str, dict], engine_type: Callable[[str], str]) -> None:
    """Add the engine's inputs for one described input (``(io_type, options)`` as in
    object_info) to ``out["required"]`` / ``out["optional"]``, recursing into dynamic ones.

    ``engine_type`` maps a socket type to the engine's (``"*"`` to match-anything)."""
    kind = "required" if required else "optional"
    if io_type == AUTOGROW:
        template = options["template"]
        sections = template["input"]
        template_required = bool(sections.get("required"))
        slot_name, (slot_type, slot_options) = next(iter(
            (sections.get("required") or sections.get("optional") or {}).items()))
        del slot_name  # each slot takes its name from the template's names
        if "names" in template:
            names = list(template["names"])
        else:
            names = [f"{template['prefix']}{i}" for i in range(template["max"])]
        for index, slot in enumerate(names):
            engine_inputs(f"{name}.{slot}", slot_type, slot_options,
                          required=required and template_required and index < template["min"],
                          out=out, engine_type=engine_type)
    elif io_type == DYNAMIC_SLOT:
        slot_options = {k: v for k, v in options.items() if k not in ("slotType", "inputs")}
        out["optional"][name] = (engine_type(options["slotType"]), slot_options)
        _nested_inputs(name, options["inputs"], out=out, engine_type=engine_type)
    elif io_type == DYNAMIC_COMBO:
        keys = [option["key"] for option in options["options"]]
        combo_options = {k: v for k, v in options.items() if k != "options"}
        out[kind][name] = ("COMBO", combo_options | {"options": keys})
        for option in options["options"]:
            _nested_inputs(name, option["inputs"], out=out, engine_type=engine_type)
    elif io_type == MATCHTYPE:
        out[kind][name] = (engine_type(options["template"]["allowed_types"]), options)
    elif io_type == "COMBO" and options.get("multiselect"):
        # A list of choices: the engine's single-value membership check would refuse it, so
        # the node's own validation is all there is (as for a V1 "*" input).
        out[kind][name] = (engine_type("*"), options)
    else:
        out[kind][name] = (engine_type(io_type), options)


def _nested_inputs(prefix: str, sections: dict, *, out: dict, engine_type) -> None:
    # Nested inputs apply only when their parent is linked or chosen: optional to the engine.
    for section in ("required", "optional"):
        for input_id, (io_type, options) in sections.get(section, {}).items():
            path = f"{prefix}.{input_id}"
            if path not in out["required"] and path not in out["optional"]:
                engine_inputs(path, io_type, options, required=False, out=out,
                              engine_type=engine_type)


# -- what execute receives -------------------------------------------------------------------

_ABSENT = object()


def has_dynamic_inputs(inputs: list) -> bool:
    from opencomfy.compat.comfy_api.latest._io_compound import DynamicCombo

    return any(isinstance(i, (DynamicInput, DynamicCombo.Input)) for i in inputs)


def nest_inputs(schema_inputs: list, values: dict) -> dict:
    """Replace the flat path values of the schema's dynamic inputs by their nested values."""
    for item in schema_inputs:
        if not _is_dynamic(item):
            continue
        value = _nested_value(item, item.id, values)
        if value is not _ABSENT:
            values[item.id] = value
    return values


def _is_dynamic(item) -> bool:
    from opencomfy.compat.comfy_api.latest._io_compound import DynamicCombo

    return isinstance(item, (DynamicInput, DynamicCombo.Input))


def _take(path: str, values: dict):
    return values.pop(path) if path in values else _ABSENT


def _drop_below(path: str, values: dict) -> None:
    prefix = path + "."
    for key in [k for k in values if k.startswith(prefix)]:
        del values[key]


def _nested_value(item, path: str, values: dict):
    """The value ``execute`` gets for the dynamic input ``item`` at ``path`` (or _ABSENT);
    every flat value below ``path`` is consumed."""
    from opencomfy.compat.comfy_api.latest._io_compound import DynamicCombo

    if isinstance(item, Autogrow.Input):
        grown = {}
        for name in item.template.names:
            value = _take(f"{path}.{name}", values)
            if value is not _ABSENT:
                grown[name] = value
        _drop_below(path, values)
        return grown
    if isinstance(item, DynamicSlot.Input):
        slot_value = _take(path, values)
        if slot_value is _ABSENT:
            _drop_below(path, values)
            return _ABSENT
        return _group({item.slot.id: slot_value}, item.inputs, path, values)
    if isinstance(item, DynamicCombo.Input):
        key = _take(path, values)
        if key is _ABSENT:
            _drop_below(path, values)
            return _ABSENT
        chosen = next((o for o in item.options if o.key == key), None)
        return _group({item.id: key}, chosen.inputs if chosen is not None else [], path, values)
    return _take(path, values)


def _group(nested: dict, inputs: list, path: str, values: dict) -> dict:
    for child in inputs:
        child_path = f"{path}.{child.id}"
        value = _nested_value(child, child_path, values) if _is_dynamic(child) \
            else _take(child_path, values)
        if value is not _ABSENT:
            nested[child.id] = value
    _drop_below(path, values)  # inputs of options not chosen
    return nested


__all__ = ["Autogrow", "DynamicSlot", "DynamicInput", "DynamicOutput", "engine_inputs",
           "nest_inputs", "has_dynamic_inputs"]
