"""A V3 pack with a plain (not async) comfy_entrypoint and a list-input node."""

from comfy_api.latest import ComfyExtension, io


class V3SumList(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(node_id="V3SumList", category="sync_entry",
                         inputs=[io.Int.Input("values", default=0)],
                         outputs=[io.Int.Output(), io.String.Output()],
                         hidden=[io.Hidden.unique_id, io.Hidden.prompt],
                         is_input_list=True)

    @classmethod
    def execute(cls, values):
        return io.NodeOutput(sum(values), f"{cls.hidden.unique_id}:{len(cls.hidden.prompt)}")


class V3Range(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(node_id="V3Range", category="sync_entry",
                         inputs=[io.Int.Input("n", default=3, min=1, max=10)],
                         outputs=[io.Int.Output(is_output_list=True)])

    @classmethod
    def execute(cls, n):
        return io.NodeOutput(list(range(n)))


class V3MatchSwitch(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        template = io.MatchType.Template("switch")
        return io.Schema(node_id="V3MatchSwitch", category="sync_entry",
                         inputs=[io.Boolean.Input("switch", default=True),
                                 io.MatchType.Input("on_true", template=template),
                                 io.MatchType.Input("on_false", template=template)],
                         outputs=[io.MatchType.Output(template=template, display_name="output")])

    @classmethod
    def execute(cls, switch, on_true, on_false):
        return io.NodeOutput(on_true if switch else on_false)


class SyncExtension(ComfyExtension):
    def on_load(self):  # written as a plain method: accepted
        self.loaded = True

    async def get_node_list(self):
        return [V3SumList, V3Range, V3MatchSwitch]


def comfy_entrypoint():
    return SyncExtension()
