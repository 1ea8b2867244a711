"""A V1 custom-node pack written the way third-party packs are: ComfyUI's module names only."""

import json

import torch
from aiohttp import web
from PIL import Image

import comfy.model_management
import comfy.utils
import folder_paths
import nodes
from comfy.comfy_types import IO
from comfy_execution.graph_utils import GraphBuilder
from server import PromptServer


@PromptServer.instance.routes.get("/v1pack/hello")
async def hello(request):
    return web.json_response({"hello": "v1pack", "max_resolution": nodes.MAX_RESOLUTION,
                              "output_dir": folder_paths.get_output_directory()})


@PromptServer.instance.routes.post("/v1pack/echo")
async def echo(request):
    return web.json_response({"echo": await request.json()})


class V1Add:
    """Adds two ints, reporting progress and honouring interrupts as long nodes do."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"a": ("INT", {"default": 1, "min": -100, "max": 100}),
                             "b": ("INT", {"default": 2, "min": -100, "max": 100})}}

    RETURN_TYPES = ("INT",)
    RETURN_NAMES = ("sum",)
    FUNCTION = "add"
    CATEGORY = "v1pack"

    def add(self, a, b):
        bar = comfy.utils.ProgressBar(2)
        comfy.model_management.throw_exception_if_processing_interrupted()
        bar.update(1)
        bar.update_absolute(2, 2)
        return (a + b,)


class V1AnyPassthrough:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": (IO.ANY, {})}}

    RETURN_TYPES = (IO.ANY,)
    FUNCTION = "run"
    CATEGORY = "v1pack"

    def run(self, value):
        return (value,)


class V1ExpandSum:
    """Expands into a chain of V1Add nodes built with GraphBuilder: start + 1 + 1 ... (n times)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"start": ("INT", {"default": 0, "min": -100, "max": 100}),
                             "n": ("INT", {"default": 3, "min": 1, "max": 10})}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "expand"
    CATEGORY = "v1pack"

    def expand(self, start, n):
        graph = GraphBuilder()
        current = start
        for _ in range(n):
            node = graph.node("V1Add", a=current, b=1)
            current = node.out(0)
        return {"result": (current,), "expand": graph.finalize()}


class V1ShowInt:
    """An output node that reports its value to the UI and through a custom event."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"forceInput": True})},
                "hidden": {"unique_id": "UNIQUE_ID"}}

    RETURN_TYPES = ()
    FUNCTION = "show"
    OUTPUT_NODE = True
    CATEGORY = "v1pack"

    def show(self, value, unique_id=None):
        PromptServer.instance.send_sync("v1pack.shown", {"node": unique_id, "value": value})
        return {"ui": {"text": [json.dumps(value)]}}


class V1SolidImage:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 1.0, "step": 0.01}),
                             "size": ("INT", {"default": 8, "min": 1, "max": nodes.MAX_RESOLUTION})}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "make"
    CATEGORY = "v1pack"

    def make(self, value, size):
        image = torch.full((1, size, size, 3), value, dtype=torch.float32)
        preview = Image.new("RGB", (size, size), (int(255 * value),) * 3)
        comfy.utils.ProgressBar(1).update_absolute(1, 1, ("PNG", preview, 512))
        return (comfy.utils.common_upscale(image.movedim(-1, 1), size * 2, size * 2,
                                           "nearest-exact", "disabled").movedim(1, -1),)


class V1Explode:
    """Fails when it runs: proves a lazy branch that was not chosen never ran."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"default": 0})}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "run"
    CATEGORY = "v1pack"

    def run(self, value):
        raise RuntimeError("V1Explode ran")


class V1StopHere:
    """Asks for the prompt to stop, then reports progress: the progress bar raises."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"forceInput": True})}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "run"
    CATEGORY = "v1pack"

    def run(self, value):
        nodes.interrupt_processing()
        assert comfy.model_management.processing_interrupted()
        comfy.utils.ProgressBar(2).update(1)
        return (value,)


class V1SaveImage(nodes.SaveImage):
    """Subclasses a core node, as many packs do."""

    CATEGORY = "v1pack"


NODE_CLASS_MAPPINGS = {
    "V1Add": V1Add,
    "V1AnyPassthrough": V1AnyPassthrough,
    "V1ExpandSum": V1ExpandSum,
    "V1ShowInt": V1ShowInt,
    "V1SolidImage": V1SolidImage,
    "V1Explode": V1Explode,
    "V1StopHere": V1StopHere,
    "V1SaveImage": V1SaveImage,
}
NODE_DISPLAY_NAME_MAPPINGS = {"V1Add": "Add (V1 pack)", "V1ShowInt": "Show Int (V1 pack)"}
WEB_DIRECTORY = "./web"


@PromptServer.instance.routes.get("/object_info")
async def shadow_core_route(request):
    """A pack route on a core path: the core route must keep answering."""
    return web.json_response({"shadowed": True})
