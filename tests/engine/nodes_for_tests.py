"""Small V1 node classes that exercise one engine feature each (written for these tests)."""

from __future__ import annotations

import asyncio

from opencomfy.engine import ExecutionBlocker, GraphBuilder, NodeRegistry
from opencomfy.engine.progress import report_progress, send_event, throw_if_interrupted


class AnyType(str):
    """A type that matches every other type (what packs do with "*")."""

    def __ne__(self, other):
        return False


ANY = AnyType("*")
CALLS: dict[str, int] = {}  # class name -> how many times FUNCTION ran


def _count(name: str) -> None:
    CALLS[name] = CALLS.get(name, 0) + 1


class IntConst:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"default": 0, "min": -1000, "max": 1000})}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "run"
    CATEGORY = "testing"

    def run(self, value):
        _count("IntConst")
        return (value,)


class FloatConst:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0})}}

    RETURN_TYPES = ("FLOAT",)
    FUNCTION = "run"

    def run(self, value):
        return (value,)


class StringConst:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("STRING", {"default": ""}),
                             "flag": ("BOOLEAN", {"default": False})}}

    RETURN_TYPES = ("STRING",)
    FUNCTION = "run"

    def run(self, value, flag):
        return (value,)


class Combo:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"choice": (["red", "green", "blue"],),
                             "big": ([f"file{i}" for i in range(30)],)}}

    RETURN_TYPES = ("STRING",)
    FUNCTION = "run"

    def run(self, choice, big):
        return (choice,)


class IntAdd:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"a": ("INT", {"default": 0}), "b": ("INT", {"default": 0})}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    def run(self, a, b):
        _count("IntAdd")
        return (a + b,)


class IntLess:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"a": ("INT", {"default": 0}), "b": ("INT", {"default": 0})}}

    RETURN_TYPES = ("BOOLEAN",)
    FUNCTION = "run"

    def run(self, a, b):
        return (a < b,)


class Output:
    """An output node that shows what it got."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": (ANY,)}}

    RETURN_TYPES = ()
    FUNCTION = "run"
    OUTPUT_NODE = True
    INPUT_IS_LIST = True

    def run(self, value):
        _count("Output")
        return {"ui": {"value": list(value)}}


class ScalarOutput:
    """An output node called once per list element (default list mapping)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": (ANY,)}}

    RETURN_TYPES = ()
    FUNCTION = "run"
    OUTPUT_NODE = True

    def run(self, value):
        return {"ui": {"value": [value]}}


class TypedOutput:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",)}, "optional": {"mask": ("MASK,IMAGE",)}}

    RETURN_TYPES = ()
    FUNCTION = "run"
    OUTPUT_NODE = True

    def run(self, image, mask=None):
        return {"ui": {"value": [image]}}


class ImageSource:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"default": 1})}}

    RETURN_TYPES = ("IMAGE", "MASK", "LATENT", ANY)
    FUNCTION = "run"

    def run(self, value):
        return (value, value, value, value)


class LazySwitch:
    """Evaluates only the branch it picks."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"switch": ("BOOLEAN",),
                             "on_true": ("INT", {"lazy": True}),
                             "on_false": ("INT", {"lazy": True})}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    def check_lazy_status(self, switch, on_true=None, on_false=None):
        if switch and on_true is None:
            return ["on_true"]
        if not switch and on_false is None:
            return ["on_false"]
        return []

    def run(self, switch, on_true=None, on_false=None):
        return (on_true if switch else on_false,)


class AsyncLazySwitch(LazySwitch):
    async def check_lazy_status(self, switch, on_true=None, on_false=None):
        await asyncio.sleep(0.01)
        return LazySwitch.check_lazy_status(self, switch, on_true, on_false)


class Recorder:
    """Counts its runs under its `tag` (to see which lazy branch ran)."""

    RUNS: list[str] = []

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"tag": ("STRING",), "value": ("INT",)}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    def run(self, tag, value):
        Recorder.RUNS.append(tag)
        return (value,)


class AsyncSleep:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT",), "seconds": ("FLOAT", {"default": 1.0})}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    async def run(self, value, seconds):
        await asyncio.sleep(seconds)
        return (value,)


class AsyncFail:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT",)}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    async def run(self, value):
        await asyncio.sleep(0.01)
        raise RuntimeError("async boom")


class Blocker:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT",), "block": ("BOOLEAN",), "message": ("STRING",)}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    def run(self, value, block, message):
        if block:
            return (ExecutionBlocker(message or None),)
        return (value,)


class MakeList:
    """Outputs [start, start+1, ..., start+count-1] as a list output."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"start": ("INT",), "count": ("INT",)}}

    RETURN_TYPES = ("INT",)
    OUTPUT_IS_LIST = (True,)
    FUNCTION = "run"

    def run(self, start, count):
        return (list(range(start, start + count)),)


class ListSum:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"values": ("INT",), "scale": ("INT",)}}

    RETURN_TYPES = ("INT", "INT")
    INPUT_IS_LIST = True
    FUNCTION = "run"

    def run(self, values, scale):
        return (sum(values) * scale[0], len(values))


class Hidden:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT",)},
                "hidden": {"prompt": "PROMPT", "extra": "EXTRA_PNGINFO", "uid": "UNIQUE_ID",
                           "dyn": "DYNPROMPT", "token": "AUTH_TOKEN_COMFY_ORG",
                           "key": "API_KEY_COMFY_ORG"}}

    RETURN_TYPES = ()
    FUNCTION = "run"
    OUTPUT_NODE = True

    def run(self, value, prompt, extra, uid, dyn, token, key):
        return {"ui": {"prompt_nodes": sorted(prompt), "extra": [extra], "uid": [uid],
                       "dyn_has_self": [dyn.has_node(uid)], "token": [token], "key": [key]}}


class Kwargs:
    """Declares nothing but takes whatever is linked to it."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}}

    RETURN_TYPES = ()
    FUNCTION = "run"
    OUTPUT_NODE = True

    def run(self, **kwargs):
        return {"ui": {"names": sorted(kwargs), "values": [kwargs[k] for k in sorted(kwargs)]}}


class Changing:
    """IS_CHANGED returns NaN (always changed) or a constant."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT",), "should_change": ("BOOLEAN",)}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    @classmethod
    def IS_CHANGED(cls, value, should_change):
        return float("nan") if should_change else "same"

    def run(self, value, should_change):
        _count("Changing")
        return (value,)


class Fingerprinted:
    """IS_CHANGED reads a class attribute (like a file hash)."""

    STATE = "a"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT",)}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    @classmethod
    async def IS_CHANGED(cls, value):
        return cls.STATE

    def run(self, value):
        _count("Fingerprinted")
        return (value,)


class NotIdempotent:
    NOT_IDEMPOTENT = True

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT",)}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    def run(self, value):
        _count("NotIdempotent")
        return (value,)


class Raise:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT",)}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    def run(self, value):
        raise ValueError(f"bad value {value}")


class ValidateCustom:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"min": 0, "max": 10}), "other": ("INT", {"min": 0, "max": 10})}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    @classmethod
    def VALIDATE_INPUTS(cls, value):
        if value == 13:
            return "thirteen is unlucky"
        return True

    def run(self, value, other):
        return (value,)


class ValidateAsync(ValidateCustom):
    @classmethod
    async def VALIDATE_INPUTS(cls, value):
        await asyncio.sleep(0)
        return value != 13 or "async says no"


class ValidateKwargs(ValidateCustom):
    @classmethod
    def VALIDATE_INPUTS(cls, **kwargs):
        return True


class ValidateTypes:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT",)}}

    RETURN_TYPES = ()
    FUNCTION = "run"
    OUTPUT_NODE = True

    @classmethod
    def VALIDATE_INPUTS(cls, input_types):
        if input_types.get("value") not in ("INT", "FLOAT"):
            return f"cannot take {input_types.get('value')}"
        return True

    def run(self, value):
        return {"ui": {"value": [value]}}


class ValidateRaises(ValidateCustom):
    @classmethod
    def VALIDATE_INPUTS(cls, value):
        raise KeyError("validator exploded")


class Progress:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"steps": ("INT",)}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    def run(self, steps):
        from PIL import Image

        for step in range(1, steps + 1):
            preview = ("JPEG", Image.new("RGB", (64, 32), (255, 0, 0)), 16) if step == steps else None
            report_progress(step, steps, preview=preview)
        send_event("custom_event", {"steps": steps})
        return (steps,)


class InterruptSelf:
    """Sets the run's interrupt flag (as POST /interrupt would) and checks it."""

    FLAG = None

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT",)}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    def run(self, value):
        InterruptSelf.FLAG.set()
        throw_if_interrupted()
        return (value,)


class ExpandSum:
    """Expands into IntAdd nodes that sum `a + b + c` (result is a link into the sub-graph)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"a": ("INT",), "b": ("INT",), "c": ("INT",)}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    def run(self, a, b, c):
        graph = GraphBuilder()
        first = graph.node("IntAdd", a=a, b=b)
        second = graph.node("IntAdd", a=first.out(0), b=c)
        shown = graph.node("ScalarOutput", value=second.out(0))
        del shown
        return {"result": (second.out(0),), "expand": graph.finalize()}


class ExpandCycle:
    """Expands into two nodes that wait on each other."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT",)}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    def run(self, value):
        graph = GraphBuilder()
        first = graph.node("IntAdd", "x", a=value)
        second = graph.node("IntAdd", "y", a=first.out(0), b=value)
        first.set_input("b", second.out(0))
        return {"result": (second.out(0),), "expand": graph.finalize()}


NODE_CLASSES = {
    name: cls for name, cls in globals().items()
    if isinstance(cls, type) and hasattr(cls, "INPUT_TYPES")
}


def _add_loop_nodes() -> None:
    from tests.engine import loop_nodes

    NODE_CLASSES.update(loop_nodes.LOOP_NODE_CLASSES)


_add_loop_nodes()


def make_registry() -> NodeRegistry:
    registry = NodeRegistry()
    for name, cls in NODE_CLASSES.items():
        registry.add(name, cls, python_module="custom_nodes.engine_tests")
    return registry
