"""Present a V3 ``io.ComfyNode`` class to the engine as a V1 node class.

The facade is a subclass of the V3 class (so ``issubclass`` and ``define_schema`` still
work) with the V1 attributes computed from the schema. Its methods strip the hidden inputs
from the engine's keyword arguments, run the node's own classmethod on a fresh class clone
whose ``hidden`` holds them, and translate ``io.NodeOutput`` into V1 return values.

Two views of the inputs exist on purpose:
- ``INPUT_TYPES()`` is what the engine executes against: hidden inputs under private names
  (a V3 node may have a real input called ``prompt``), "any" and match types the engine's way;
- ``GET_NODE_INFO_V1()`` is what object_info reports, identical to ComfyUI's.
"""

from __future__ import annotations

import inspect
from typing import Any

from opencomfy.compat.comfy_api.latest._io_dynamic import (
    engine_inputs, has_dynamic_inputs, nest_inputs,
)
from opencomfy.compat.comfy_api.latest._io_node import (
    ComfyNode, HiddenHolder, NodeOutput, Schema, _overrides, _UIOutput, is_v3_node,
)

# Engine-facing names of the hidden inputs; no V3 input id can start with this.
HIDDEN_PREFIX = "__v3_hidden__"


def make_v1_facade(v3_cls: type[ComfyNode], *, python_module: str | None = None) -> type:
    """Build the V1 class the engine will run for ``v3_cls`` (validates its schema)."""
    schema = v3_cls.GET_SCHEMA()
    if python_module is not None:
        v3_cls.RELATIVE_PYTHON_MODULE = python_module
    outputs = schema.outputs
    is_async = inspect.iscoroutinefunction(v3_cls.execute)
    attrs: dict[str, Any] = {
        "__module__": v3_cls.__module__,
        "__qualname__": v3_cls.__qualname__,
        "__doc__": v3_cls.__doc__,
        "V3_CLASS": v3_cls,
        "V3_FACADE": True,
        "SCHEMA": schema,
        "DYNAMIC_COMBOS": _dynamic_combos(schema),
        "RELATIVE_PYTHON_MODULE": v3_cls.RELATIVE_PYTHON_MODULE,
        "RETURN_TYPES": tuple(_engine_output_type(o) for o in outputs),
        "RETURN_NAMES": tuple(o.display_name or o.io_type for o in outputs),
        "OUTPUT_IS_LIST": tuple(o.is_output_list for o in outputs),
        "OUTPUT_TOOLTIPS": tuple(o.tooltip or None for o in outputs),
        "OUTPUT_NODE": schema.is_output_node,
        "INPUT_IS_LIST": schema.is_input_list,
        "NOT_IDEMPOTENT": schema.not_idempotent,
        "CATEGORY": schema.category,
        "DESCRIPTION": schema.description,
        "DEPRECATED": schema.is_deprecated,
        "EXPERIMENTAL": schema.is_experimental,
        "API_NODE": schema.is_api_node,
        "FUNCTION": "EXECUTE_V3_ASYNC" if is_async else "EXECUTE_V3",
        "EXECUTE_V3": classmethod(_execute_v3),
        "EXECUTE_V3_ASYNC": classmethod(_execute_v3_async),
        "INPUT_TYPES": classmethod(_engine_input_types),
        "GET_NODE_INFO_V1": classmethod(_node_info_v1),
    }
    if _overrides(v3_cls, "check_lazy_status"):
        attrs["check_lazy_status"] = _wrap_hook(v3_cls, "check_lazy_status", schema)
    if _overrides(v3_cls, "validate_inputs"):
        attrs["VALIDATE_INPUTS"] = _wrap_hook(v3_cls, "validate_inputs", schema)
    if _overrides(v3_cls, "fingerprint_inputs"):
        attrs["IS_CHANGED"] = _wrap_hook(v3_cls, "fingerprint_inputs", schema)
    return type(v3_cls.__name__, (v3_cls,), attrs)


def is_facade(cls) -> bool:
    return isinstance(cls, type) and "V3_CLASS" in cls.__dict__


def _engine_input_types(facade) -> dict:
    """The V1 inputs the engine validates and executes with (schema evaluated afresh)."""
    v3_cls = facade.V3_CLASS
    schema = v3_cls.FINALIZE_SCHEMA()
    info = schema.get_v1_info(v3_cls).input
    # Dynamic inputs (Autogrow, DynamicSlot, DynamicCombo) become plain inputs per path.
    out: dict = {"required": {}, "optional": {}}
    for kind in ("required", "optional"):
        for name, (io_type, options) in info.get(kind, {}).items():
            engine_inputs(name, io_type, options, required=kind == "required", out=out,
                          engine_type=_engine_type)
    if "required" not in info and not out["required"]:
        del out["required"]
    if not out["optional"]:
        del out["optional"]
    if schema.hidden:
        out["hidden"] = {HIDDEN_PREFIX + h.name: h.value for h in schema.hidden}
    return out


MATCHTYPE = "COMFY_MATCHTYPE_V3"


def _dynamic_combos(schema: Schema) -> tuple:
    """The schema's dynamic inputs (their flat prompt values are nested before a call)."""
    return tuple(i for i in schema.inputs if has_dynamic_inputs([i]))


def _nest_dynamic_inputs(dynamic_inputs: tuple, inputs: dict) -> dict:
    """ComfyUI's shapes for dynamic inputs (see ``_io_dynamic.nest_inputs``)."""
    return nest_inputs(list(dynamic_inputs), inputs) if dynamic_inputs else inputs


def _engine_output_type(output) -> str:
    """A MatchType output carries whatever its template allows; others their own type."""
    template = getattr(output, "template", None)
    if output.io_type == MATCHTYPE and template is not None:
        return _engine_type(template.as_dict()["allowed_types"])
    return _engine_type(output.io_type)


def _engine_type(io_type: str) -> str:
    """``io.AnyType`` ("*") as the engine's match-anything type.

    ComfyUI's plain "*" string only matches another "*" (its own V3 code notes that
    ``io.AnyType`` "does not work currently"); V3 packs use it to mean "any", as newer ComfyUI
    versions accept, so the engine sees ``IO.ANY``. object_info still reports "*".
    """
    if io_type == "*" or "*" in io_type.split(","):
        from opencomfy.compat.comfy.comfy_types.node_typing import IO

        return IO.ANY
    return io_type


def _node_info_v1(facade) -> dict:
    return facade.V3_CLASS.GET_NODE_INFO_V1()


_PREFIX_LEN = len(HIDDEN_PREFIX)


def _split_hidden(kwargs: dict, *, is_input_list: bool) -> tuple[dict, HiddenHolder]:
    """Separate the engine's hidden keyword arguments from the node's real inputs."""
    hidden: dict = {}
    inputs: dict = {}
    for key, value in kwargs.items():
        if key.startswith(HIDDEN_PREFIX):
            if is_input_list and isinstance(value, list):
                value = value[0] if value else None
            hidden[key[_PREFIX_LEN:]] = value
        else:
            inputs[key] = value
    return inputs, HiddenHolder(**hidden)


def _wrap_hook(v3_cls: type, name: str, schema: Schema):
    """A V1 hook (check_lazy_status / VALIDATE_INPUTS / IS_CHANGED) over the V3 classmethod.

    The wrapper carries the V3 method's signature, because the engine passes VALIDATE_INPUTS
    only the arguments its signature names.
    """
    target = getattr(v3_cls, name)
    user_sig = inspect.signature(target)
    is_list = schema.is_input_list
    combos = _dynamic_combos(schema)

    async def async_hook(cls_or_self, *args, **kwargs):
        inputs, hidden = _split_hidden(kwargs, is_input_list=is_list)
        clone = v3_cls.PREPARE_CLASS_CLONE(hidden)
        return await getattr(clone, name)(*args, **_nest_dynamic_inputs(combos, inputs))

    def sync_hook(cls_or_self, *args, **kwargs):
        inputs, hidden = _split_hidden(kwargs, is_input_list=is_list)
        clone = v3_cls.PREPARE_CLASS_CLONE(hidden)
        return getattr(clone, name)(*args, **_nest_dynamic_inputs(combos, inputs))

    # The engine awaits a coroutine hook, so the wrapper must be one exactly when the target is.
    hook = async_hook if inspect.iscoroutinefunction(target) else sync_hook

    first = inspect.Parameter("cls", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    hook.__signature__ = user_sig.replace(parameters=[first, *user_sig.parameters.values()])
    hook.__name__ = name
    hook.__qualname__ = f"{v3_cls.__qualname__}.{name}"
    return classmethod(hook)


def _run(facade, kwargs: dict):
    v3_cls = facade.V3_CLASS
    inputs, hidden = _split_hidden(kwargs, is_input_list=facade.INPUT_IS_LIST)
    return v3_cls, v3_cls.PREPARE_CLASS_CLONE(hidden), _nest_dynamic_inputs(facade.DYNAMIC_COMBOS,
                                                                           inputs)


def _execute_v3(facade, **kwargs):
    v3_cls, clone, inputs = _run(facade, kwargs)
    return to_v1_result(v3_cls, clone.execute(**inputs), len(facade.RETURN_TYPES))


async def _execute_v3_async(facade, **kwargs):
    v3_cls, clone, inputs = _run(facade, kwargs)
    return to_v1_result(v3_cls, await clone.execute(**inputs), len(facade.RETURN_TYPES))


def to_v1_result(v3_cls: type, returned: Any, output_count: int):
    """Translate what ``execute`` returned into the V1 conventions the engine understands."""
    from opencomfy.engine.graph_utils import ExecutionBlocker

    if returned is None:
        out = NodeOutput()
    elif isinstance(returned, NodeOutput):
        out = returned
    elif isinstance(returned, tuple):
        out = NodeOutput(*returned)
    elif isinstance(returned, dict):
        out = NodeOutput.from_dict(returned)
    elif isinstance(returned, ExecutionBlocker):
        out = NodeOutput(block_execution=returned.message)
    else:
        raise TypeError(f"Invalid return type from node: {type(returned)}")
    schema = v3_cls.SCHEMA or v3_cls.GET_SCHEMA()
    if out.expand is not None and not schema.enable_expand:
        raise RuntimeError(
            f"Node {v3_cls.__name__} is not expandable, but expand included in NodeOutput; "
            "developer should set enable_expand=True on node's Schema to allow this.")
    ui = out.ui.as_dict() if isinstance(out.ui, _UIOutput) else out.ui
    if out.block_execution is not None:
        result = tuple(ExecutionBlocker(out.block_execution) for _ in range(output_count))
    else:
        result = tuple(out.args)
    if ui is None and out.expand is None:
        return result
    v1: dict = {"result": result}
    if ui is not None:
        v1["ui"] = ui
    if out.expand is not None:
        v1["expand"] = out.expand
    return v1


__all__ = ["make_v1_facade", "is_facade", "is_v3_node", "to_v1_result", "HIDDEN_PREFIX"]
