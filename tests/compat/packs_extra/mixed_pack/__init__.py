"""V1 and V3 classes in one NODE_CLASS_MAPPINGS, a web folder from pyproject.toml, a node
added through nodes.NODE_CLASS_MAPPINGS, and a prestartup script."""

import os

import nodes
from comfy_api.latest import io


class MixedV3Upper(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(node_id="MixedV3Upper", display_name="Upper (mixed)",
                         inputs=[io.String.Input("text", default="a")],
                         outputs=[io.String.Output()])

    @classmethod
    def execute(cls, text):
        return io.NodeOutput(text.upper())


class MixedV1Marker:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}}

    RETURN_TYPES = ("STRING",)
    FUNCTION = "run"

    def run(self):
        return (os.environ.get("MIXED_PACK_PRESTARTUP", "not run"),)


class MixedLate:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    def run(self):
        return (1,)


nodes.NODE_CLASS_MAPPINGS["MixedLate"] = MixedLate

class MixedBadSchema(io.ComfyNode):
    """Two inputs with one id: this node cannot load, the others still do."""

    @classmethod
    def define_schema(cls):
        return io.Schema(node_id="MixedBadSchema", inputs=[io.Int.Input("x"), io.Int.Input("x")])

    @classmethod
    def execute(cls, x):
        return io.NodeOutput()


NODE_CLASS_MAPPINGS = {"MixedV3Upper": MixedV3Upper, "MixedBadSchema": MixedBadSchema,
                       "MixedV1Marker": MixedV1Marker}
