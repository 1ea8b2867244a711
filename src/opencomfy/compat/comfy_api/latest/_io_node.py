"""V3 node definition: ``io.Schema``, ``io.ComfyNode``, ``io.NodeOutput``, hidden inputs.

A V3 node is a class with classmethods ``define_schema()`` and ``execute(**inputs)``. It
never holds instance state: each execution runs on a fresh subclass whose ``hidden`` holds
the hidden inputs (``cls.hidden.unique_id``). The engine speaks only the V1 protocol; the
facade that presents a V3 class to it is built in :mod:`opencomfy.compat.v3_facade`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any

from opencomfy.compat.comfy_api.latest._io_types import Input, Output, prune_dict


class Hidden(str, Enum):
    """Hidden inputs a node can ask for; the values are ComfyUI's V1 hidden type names."""

    unique_id = "UNIQUE_ID"
    prompt = "PROMPT"
    extra_pnginfo = "EXTRA_PNGINFO"
    dynprompt = "DYNPROMPT"
    auth_token_comfy_org = "AUTH_TOKEN_COMFY_ORG"
    api_key_comfy_org = "API_KEY_COMFY_ORG"


class HiddenHolder:
    """``cls.hidden`` during execution; hidden inputs the node did not ask for read as None."""

    def __init__(self, unique_id=None, prompt=None, extra_pnginfo=None, dynprompt=None,
                 auth_token_comfy_org=None, api_key_comfy_org=None, **kwargs) -> None:
        self.unique_id = unique_id
        self.prompt = prompt
        self.extra_pnginfo = extra_pnginfo
        self.dynprompt = dynprompt
        self.auth_token_comfy_org = auth_token_comfy_org
        self.api_key_comfy_org = api_key_comfy_org

    def __getattr__(self, key: str):
        return None

    @classmethod
    def from_dict(cls, d: dict | None) -> "HiddenHolder":
        """From ``{Hidden member (or its name): value}``."""
        if not d:
            return cls()
        return cls(**{(k.name if isinstance(k, Hidden) else k): v for k, v in d.items()})


@dataclass
class NodeInfoV1:
    """What ComfyUI's object_info reports for a V3 node (every key, Nones included)."""

    input: dict | None = None
    input_order: dict | None = None
    output: list | None = None
    output_is_list: list | None = None
    output_name: list | None = None
    output_tooltips: list | None = None
    output_matchtypes: list | None = None
    name: str | None = None
    display_name: str | None = None
    description: str | None = None
    python_module: Any = None
    category: str | None = None
    output_node: bool | None = None
    deprecated: bool | None = None
    experimental: bool | None = None
    api_node: bool | None = None


def add_to_dict_v1(i: Input, d: dict) -> None:
    """Put input ``i`` under "required" or "optional" as ``(type, options)``."""
    key = "optional" if i.optional else "required"
    options = i.as_dict()
    options.pop("optional", None)
    d.setdefault(key, {})[i.id] = (i.get_io_type(), options)


def add_to_dict_v3(io: Input | Output, d: dict) -> None:
    d[io.id] = (io.get_io_type(), io.as_dict())


def create_input_dict_v1(inputs: list[Input]) -> dict:
    d: dict = {"required": {}}
    for i in inputs:
        add_to_dict_v1(i, d)
    return d


@dataclass
class Schema:
    """Everything about a V3 node except its code."""

    node_id: str
    display_name: str | None = None
    category: str = "sd"
    inputs: list = field(default_factory=list)
    outputs: list = field(default_factory=list)
    hidden: list = field(default_factory=list)
    description: str = ""
    is_input_list: bool = False
    is_output_node: bool = False
    is_deprecated: bool = False
    is_experimental: bool = False
    is_api_node: bool = False
    not_idempotent: bool = False
    enable_expand: bool = False
    # Newer ComfyUI schema fields, accepted so packs written for them load; not reported.
    search_aliases: list | None = None
    essentials_category: str | None = None
    has_intermediate_output: bool = False
    is_dev_only: bool = False
    accept_all_inputs: bool = False
    price_badge: Any = None

    def validate(self) -> None:
        """Ids must be unique among inputs, among outputs, and between the two."""
        input_ids = [nested.id for i in self.inputs for nested in i.get_all()]
        output_ids = [o.id for o in self.outputs]
        issues = []
        for kind, ids in (("Input", input_ids), ("Output", output_ids)):
            dupes = [k for k, n in Counter(ids).items() if n > 1]
            if dupes:
                issues.append(f"{kind} ids must be unique, but {dupes} are not.")
        both = set(input_ids) & set(output_ids)
        if both:
            issues.append(f"Ids must be unique between inputs and outputs, but {both} are not.")
        if issues:
            raise ValueError("\n".join(issues))
        for item in (*self.inputs, *self.outputs):
            item.validate()

    def finalize(self) -> None:
        """Add the hidden inputs the flags imply and default output ids, as ComfyUI does."""
        self.inputs = list(self.inputs or [])
        self.outputs = list(self.outputs or [])
        self.hidden = list(self.hidden or [])
        implied = []
        if self.is_api_node:
            implied += [Hidden.auth_token_comfy_org, Hidden.api_key_comfy_org]
        if self.is_output_node:
            implied += [Hidden.prompt, Hidden.extra_pnginfo]
        for h in implied:
            if h not in self.hidden:
                self.hidden.append(h)
        for index, output in enumerate(self.outputs):
            if output.id is None:
                output.id = f"_{index}_{output.io_type}_"

    def get_v1_info(self, cls) -> NodeInfoV1:
        inputs = create_input_dict_v1(self.inputs)
        for h in self.hidden:
            inputs.setdefault("hidden", {})[h.name] = (h.value,)
        return NodeInfoV1(
            input=inputs,
            input_order={kind: list(entries) for kind, entries in inputs.items()},
            output=[o.io_type for o in self.outputs],
            output_is_list=[o.is_output_list for o in self.outputs],
            output_name=[o.display_name or o.io_type for o in self.outputs],
            output_tooltips=[o.tooltip or None for o in self.outputs],
            output_matchtypes=_output_matchtypes(self.outputs),
            name=self.node_id,
            display_name=self.display_name,
            description=self.description,
            python_module=getattr(cls, "RELATIVE_PYTHON_MODULE", "nodes"),
            category=self.category,
            output_node=self.is_output_node,
            deprecated=self.is_deprecated,
            experimental=self.is_experimental,
            api_node=self.is_api_node,
        )


def _output_matchtypes(outputs: list) -> list | None:
    """Template ids of MatchType outputs (None elsewhere); None when there are none."""
    from opencomfy.compat.comfy_api.latest._io_compound import MatchType

    ids = [o.template.template_id if isinstance(o, MatchType.Output) else None for o in outputs]
    return ids if any(i is not None for i in ids) else None


class classproperty:  # noqa: N801 (reads like the built-in decorators)
    """A read-only property on the class."""

    def __init__(self, fget) -> None:
        self.fget = fget

    def __get__(self, obj, owner):
        return self.fget(owner)


class _UIOutput:
    """Base of the ``ui`` helpers: ``as_dict()`` gives the node's ``ui`` output."""

    def as_dict(self) -> dict:
        raise NotImplementedError


class NodeOutput:
    """What ``execute`` returns: output values, plus optional ``ui``, ``expand``, blocking."""

    def __init__(self, *args: Any, ui: _UIOutput | dict | None = None, expand: dict | None = None,
                 block_execution: str | None = None) -> None:
        self.args = args
        self.ui = ui
        self.expand = expand
        self.block_execution = block_execution

    @property
    def result(self):
        return self.args if self.args else None

    @classmethod
    def from_dict(cls, data: dict) -> "NodeOutput":
        from opencomfy.engine.graph_utils import ExecutionBlocker

        result = data.get("result", ())
        if isinstance(result, ExecutionBlocker):
            return cls(block_execution=result.message)
        return cls(*result, ui=data.get("ui"), expand=data.get("expand"))

    def __getitem__(self, index):
        return self.args[index]


def _overrides(cls: type, name: str) -> bool:
    """Whether ``cls`` (or a base below ComfyNode) defines ``name`` itself."""
    for klass in cls.__mro__:
        if klass is ComfyNode:
            return False
        if name in klass.__dict__:
            return True
    return False


class _DefaultLazyStatus:
    """ComfyNode's default ``check_lazy_status``: ask for every input that is still None.

    The engine asks a node for its lazy status when the class *has* the method; ComfyUI only
    does when a node overrides it. So on the V1 facade of a class that does not override it
    (the facade sets ``V3_FACADE``), the attribute is absent.
    """

    def __get__(self, obj, owner):
        if owner.__dict__.get("V3_FACADE"):
            raise AttributeError("check_lazy_status")
        return self._default.__get__(owner, owner)

    @staticmethod
    def _default(cls, **kwargs) -> list[str]:
        return [name for name, value in kwargs.items() if value is None]


class ComfyNode:
    """Base class of V3 nodes: override ``define_schema`` and ``execute`` (classmethods)."""

    RELATIVE_PYTHON_MODULE: str | None = None
    SCHEMA: Schema | None = None
    hidden: HiddenHolder | None = None

    @classmethod
    def define_schema(cls) -> Schema:
        raise NotImplementedError

    @classmethod
    def execute(cls, **kwargs) -> NodeOutput:
        raise NotImplementedError

    @classmethod
    def validate_inputs(cls, **kwargs) -> bool | str:
        raise NotImplementedError

    @classmethod
    def fingerprint_inputs(cls, **kwargs) -> Any:
        raise NotImplementedError

    check_lazy_status = _DefaultLazyStatus()

    @classmethod
    def GET_BASE_CLASS(cls):  # noqa: N802
        return ComfyNode

    @classmethod
    def VALIDATE_CLASS(cls) -> None:  # noqa: N802
        for name in ("define_schema", "execute"):
            if not _overrides(cls, name):
                raise TypeError(f"No {name} function was defined for node class {cls.__name__}.")

    @classmethod
    def FINALIZE_SCHEMA(cls) -> Schema:  # noqa: N802
        schema = cls.define_schema()
        schema.finalize()
        return schema

    @classmethod
    def GET_SCHEMA(cls) -> Schema:  # noqa: N802
        """The validated, finalized schema; also kept as ``cls.SCHEMA``."""
        cls.VALIDATE_CLASS()
        schema = cls.FINALIZE_SCHEMA()
        schema.validate()
        cls.SCHEMA = schema
        return schema

    @classmethod
    def GET_NODE_INFO_V1(cls) -> dict:  # noqa: N802
        """object_info for this node exactly as ComfyUI reports a V3 node."""
        return asdict(cls.GET_SCHEMA().get_v1_info(cls))

    @classmethod
    def GET_NODE_INFO_V3(cls) -> dict:  # noqa: N802
        schema = cls.GET_SCHEMA()
        inputs: dict = {}
        outputs: dict = {}
        for i in schema.inputs:
            add_to_dict_v3(i, inputs)
        for o in schema.outputs:
            add_to_dict_v3(o, outputs)
        return prune_dict({
            "input": inputs, "output": outputs, "hidden": [h.value for h in schema.hidden],
            "name": schema.node_id, "display_name": schema.display_name,
            "description": schema.description, "category": schema.category,
            "output_node": schema.is_output_node, "deprecated": schema.is_deprecated,
            "experimental": schema.is_experimental, "api_node": schema.is_api_node,
            "python_module": getattr(cls, "RELATIVE_PYTHON_MODULE", "nodes"),
        })

    @classmethod
    def PREPARE_CLASS_CLONE(cls, hidden: HiddenHolder | dict | None = None) -> type:  # noqa: N802
        """A throwaway subclass to run one call on, with ``hidden`` set: no state leaks."""
        if not isinstance(hidden, HiddenHolder):
            hidden = HiddenHolder.from_dict(hidden)
        return type(cls.__name__, (cls,), {"hidden": hidden, "__module__": cls.__module__,
                                           "__qualname__": cls.__qualname__})

    # ComfyUI's V1 view of a V3 class, for code that reads these attributes directly.
    @classmethod
    def INPUT_TYPES(cls) -> dict:  # noqa: N802
        inputs = cls.FINALIZE_SCHEMA().get_v1_info(cls).input
        if inputs is None:  # get_v1_info always fills it; None would be our bug
            raise RuntimeError(f"{cls.__name__}: schema produced no input dict")
        return inputs

    RETURN_TYPES = classproperty(lambda cls: [o.io_type for o in cls._schema().outputs])
    RETURN_NAMES = classproperty(lambda cls: [o.display_name or o.io_type for o in cls._schema().outputs])
    OUTPUT_IS_LIST = classproperty(lambda cls: [o.is_output_list for o in cls._schema().outputs])
    OUTPUT_TOOLTIPS = classproperty(lambda cls: [o.tooltip or None for o in cls._schema().outputs])
    CATEGORY = classproperty(lambda cls: cls._schema().category)
    DESCRIPTION = classproperty(lambda cls: cls._schema().description)
    OUTPUT_NODE = classproperty(lambda cls: cls._schema().is_output_node)
    INPUT_IS_LIST = classproperty(lambda cls: cls._schema().is_input_list)
    NOT_IDEMPOTENT = classproperty(lambda cls: cls._schema().not_idempotent)
    DEPRECATED = classproperty(lambda cls: cls._schema().is_deprecated)
    EXPERIMENTAL = classproperty(lambda cls: cls._schema().is_experimental)
    API_NODE = classproperty(lambda cls: cls._schema().is_api_node)

    @classmethod
    def _schema(cls) -> Schema:
        schema = cls.__dict__.get("SCHEMA")
        return schema if schema is not None else cls.GET_SCHEMA()


def is_v3_node(cls) -> bool:
    """Whether ``cls`` is a V3 node class (a ComfyNode subclass)."""
    return isinstance(cls, type) and issubclass(cls, ComfyNode)
