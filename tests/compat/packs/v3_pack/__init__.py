"""A V3 custom-node pack: comfy_api.latest io/ui, ComfyExtension and comfy_entrypoint."""

import asyncio

import torch

from comfy_api.latest import ComfyAPISync, ComfyExtension, io, ui


class V3Multiply(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="V3Multiply",
            display_name="Multiply (V3)",
            category="v3pack/math",
            description="Multiplies or adds a float and an int.",
            inputs=[
                io.Float.Input("value", default=1.5, min=-10.0, max=10.0, step=0.5,
                               tooltip="the float"),
                io.Int.Input("factor", default=2, min=1, max=10, display_mode=io.NumberDisplay.slider),
                io.Combo.Input("mode", options=["mul", "add"], default="mul"),
                io.String.Input("label", multiline=True, default="", optional=True),
            ],
            outputs=[io.Float.Output(display_name="result", tooltip="the product"),
                     io.String.Output()],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def validate_inputs(cls, factor):
        if factor == 7:
            return "seven is not allowed"
        return True

    @classmethod
    def fingerprint_inputs(cls, value, factor, mode, label=""):
        return f"{value}-{factor}-{mode}"

    @classmethod
    def execute(cls, value, factor, mode, label="") -> io.NodeOutput:
        api = ComfyAPISync()
        api.execution.set_progress(1, 2, node_id=cls.hidden.unique_id)
        result = value * factor if mode == "mul" else value + factor
        text = f"{label}{result} from node {cls.hidden.unique_id}"
        return io.NodeOutput(result, text, ui=ui.PreviewText(text))


class V3LazySwitch(io.ComfyNode):
    """Only the chosen branch is evaluated."""

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="V3LazySwitch",
            display_name="Lazy Switch (V3)",
            category="v3pack/flow",
            inputs=[io.Boolean.Input("switch", default=True),
                    io.AnyType.Input("on_true", lazy=True, optional=True),
                    io.AnyType.Input("on_false", lazy=True, optional=True)],
            outputs=[io.AnyType.Output()],
        )

    @classmethod
    def check_lazy_status(cls, switch, on_true=None, on_false=None):
        wanted = "on_true" if switch else "on_false"
        return [wanted] if (on_true if switch else on_false) is None else []

    @classmethod
    def execute(cls, switch, on_true=None, on_false=None):
        return io.NodeOutput(on_true if switch else on_false)


class V3AsyncSleep(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(node_id="V3AsyncSleep", category="v3pack/flow",
                         inputs=[io.Float.Input("seconds", default=0.0, min=0.0, max=5.0),
                                 io.AnyType.Input("value")],
                         outputs=[io.AnyType.Output()])

    @classmethod
    async def execute(cls, seconds, value):
        await asyncio.sleep(seconds)
        return io.NodeOutput(value)


class V3Gate(io.ComfyNode):
    """Blocks everything downstream when closed."""

    @classmethod
    def define_schema(cls):
        return io.Schema(node_id="V3Gate", category="v3pack/flow",
                         inputs=[io.Image.Input("image"), io.Boolean.Input("open", default=True)],
                         outputs=[io.Image.Output()])

    @classmethod
    def execute(cls, image, open):
        if not open:
            return io.NodeOutput(block_execution="gate closed")
        return io.NodeOutput(image)


class V3PreviewImage(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(node_id="V3PreviewImage", display_name="Preview (V3)",
                         category="v3pack/image", inputs=[io.Image.Input("images")],
                         is_output_node=True)

    @classmethod
    def execute(cls, images):
        return io.NodeOutput(ui=ui.PreviewImage(images, cls=cls))


class V3Invert(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(node_id="V3Invert", category="v3pack/image",
                         inputs=[io.Image.Input("image")],
                         outputs=[io.Image.Output(), io.Mask.Output(display_name="luma")])

    @classmethod
    def execute(cls, image: torch.Tensor):
        inverted = 1.0 - image
        return io.NodeOutput(inverted, inverted.mean(dim=-1))


class V3Extension(ComfyExtension):
    async def on_load(self) -> None:
        self.loaded = True

    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return [V3Multiply, V3LazySwitch, V3AsyncSleep, V3Gate, V3PreviewImage, V3Invert]


async def comfy_entrypoint() -> V3Extension:
    return V3Extension()
