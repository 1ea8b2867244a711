"""V3 socket types built from others: ``io.MultiType`` (one input, several accepted types)
and ``io.MatchType`` (inputs and outputs whose type follows what is linked)."""

from __future__ import annotations

import copy

from opencomfy.compat.comfy_api.latest import _io_types
from opencomfy.compat.comfy_api.latest._io_types import (
    ComfyTypeI, ComfyTypeIO, Input, Output, WidgetInput, _ComfyType, comfytype,
)


@comfytype(io_type="COMFY_MULTITYPED_V3")
class MultiType(ComfyTypeI):
    """An input that accepts several socket types (``types=[io.Image, io.Mask]``)."""

    class Input(Input):
        def __init__(self, id, types: list, display_name: str | None = None,
                     optional: bool = False, tooltip: str | None = None, lazy: bool | None = None,
                     extra_dict: dict | None = None, raw_link: bool | None = None,
                     **kwargs) -> None:
            # An Input as `id` is a widget to show, with these values overriding its own.
            self.input_override = None
            if isinstance(id, Input):
                self.input_override = copy.copy(id)
                optional = id.optional if id.optional is True else optional
                tooltip = id.tooltip if id.tooltip is not None else tooltip
                display_name = id.display_name if id.display_name is not None else display_name
                lazy = id.lazy if id.lazy is not None else lazy
                id = id.id
                if isinstance(self.input_override, WidgetInput):
                    self.input_override.widget_type = self.input_override.get_io_type()
            super().__init__(id, display_name, optional, tooltip, lazy, extra_dict, raw_link, **kwargs)
            self._io_types = types

        @property
        def io_types(self) -> list[type]:
            return [t if isinstance(t, type) else type(t) for t in self._io_types]

        def get_io_type(self) -> str:
            names = [t.io_type for t in self.io_types]
            if self.input_override is not None:
                names.insert(0, self.input_override.get_io_type())
            return ",".join(dict.fromkeys(names))

        def as_dict(self) -> dict:
            if self.input_override is not None:
                return self.input_override.as_dict() | super().as_dict()
            return super().as_dict()

@comfytype(io_type="COMFY_MATCHTYPE_V3")
class MatchType(ComfyTypeIO):
    """Inputs and outputs whose type is decided by what is linked (one template id)."""

    class Template:
        def __init__(self, template_id: str, allowed_types=None) -> None:
            if allowed_types is None:
                allowed_types = [_io_types.AnyType]
            elif not isinstance(allowed_types, (list, tuple)):
                allowed_types = [allowed_types]
            for t in allowed_types:
                kind = t if isinstance(t, type) else type(t)
                if not issubclass(kind, _ComfyType):
                    raise ValueError(f"Allowed types must be ComfyTypes, got {kind.__name__}")
            self.template_id = template_id
            self.allowed_types = list(allowed_types)

        def as_dict(self) -> dict:
            return {"template_id": self.template_id,
                    "allowed_types": ",".join(t.io_type for t in self.allowed_types)}

    class Input(Input):
        def __init__(self, id: str, template: "MatchType.Template", display_name: str | None = None,
                     optional: bool = False, tooltip: str | None = None, lazy: bool | None = None,
                     extra_dict: dict | None = None, raw_link: bool | None = None,
                     **kwargs) -> None:
            super().__init__(id, display_name, optional, tooltip, lazy, extra_dict, raw_link, **kwargs)
            self.template = template

        def as_dict(self) -> dict:
            return super().as_dict() | {"template": self.template.as_dict()}

    class Output(Output):
        def __init__(self, template: "MatchType.Template", id: str | None = None,
                     display_name: str | None = None, tooltip: str | None = None,
                     is_output_list: bool = False) -> None:
            # Named by its id when it has one, as ComfyUI does; "MATCHTYPE" otherwise.
            if not id and not display_name:
                display_name = "MATCHTYPE"
            super().__init__(id, display_name, tooltip, is_output_list)
            self.template = template

        def as_dict(self) -> dict:
            return super().as_dict() | {"template": self.template.as_dict()}


@comfytype(io_type="COMFY_DYNAMICCOMBO_V3")
class DynamicCombo(ComfyTypeI):
    """A dropdown whose choice decides which further inputs the node shows.

    The node receives one dict for it: ``{"<id>": chosen key, "<input id>": value, ...}``
    holding the inputs of the chosen option (prompt ids ``<id>.<input id>``).
    """

    class Option:
        def __init__(self, key: str, inputs: list) -> None:
            self.key = key
            self.inputs = list(inputs)

        def as_dict(self) -> dict:
            from opencomfy.compat.comfy_api.latest._io_node import create_input_dict_v1

            return {"key": self.key, "inputs": create_input_dict_v1(self.inputs)}

    class Input(Input):
        def __init__(self, id: str, options: list, display_name: str | None = None,
                     optional: bool = False, tooltip: str | None = None, lazy: bool | None = None,
                     extra_dict: dict | None = None, **kwargs) -> None:
            super().__init__(id, display_name, optional, tooltip, lazy, extra_dict, **kwargs)
            self.options = list(options)

        def as_dict(self) -> dict:
            return super().as_dict() | {"options": [o.as_dict() for o in self.options]}

        def get_all(self) -> list:
            # Options often reuse input ids; they are never live together.
            return [self]

        def validate(self) -> None:
            for option in self.options:
                for nested in option.inputs:
                    nested.validate()
