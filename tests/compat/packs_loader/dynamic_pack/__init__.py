"""A V3 pack (async comfy_entrypoint) using io.Autogrow, io.DynamicSlot and io.MatchType."""
from comfy_api.latest import ComfyExtension, io

LOADED = {"on_load": 0}


class AutogrowSum(io.ComfyNode):
    """Sums the linked values of an Autogrow group with named slots."""

    @classmethod
    def define_schema(cls):
        template = io.Autogrow.TemplateNames(io.Int.Input("value"), names=["a", "b", "c"], min=1)
        return io.Schema(node_id="AutogrowSum", category="tests/loader",
                         inputs=[io.Autogrow.Input("values", template=template)],
                         outputs=[io.Int.Output(id="total"), io.String.Output(id="names")])

    @classmethod
    def execute(cls, values):
        return io.NodeOutput(sum(values.values()), ",".join(sorted(values)))


class AutogrowCount(io.ComfyNode):
    """Counts the linked slots of an Autogrow group with numbered slots (all optional)."""

    @classmethod
    def define_schema(cls):
        template = io.Autogrow.TemplatePrefix(io.Int.Input("item"), prefix="item", min=0, max=4)
        return io.Schema(node_id="AutogrowCount", category="tests/loader",
                         inputs=[io.Autogrow.Input("items", template=template)],
                         outputs=[io.String.Output()])

    @classmethod
    def execute(cls, items):
        return io.NodeOutput(repr(sorted(items.items())))


class SlotOffset(io.ComfyNode):
    """A DynamicSlot: linked, it adds its nested offset; unlinked, it reports so."""

    @classmethod
    def define_schema(cls):
        slot = io.DynamicSlot.Input(slot=io.Int.Input("base"),
                                    inputs=[io.Int.Input("offset", default=10)])
        return io.Schema(node_id="SlotOffset", category="tests/loader",
                         inputs=[slot], outputs=[io.String.Output()])

    @classmethod
    def execute(cls, base=None):
        if base is None:
            return io.NodeOutput("unlinked")
        return io.NodeOutput(f"{base['base'] + base.get('offset', 0)} from {sorted(base)}")


class MatchPass(io.ComfyNode):
    """A MatchType pass-through: the output has the linked input's type."""

    @classmethod
    def define_schema(cls):
        template = io.MatchType.Template("t")
        return io.Schema(node_id="MatchPass", category="tests/loader",
                         inputs=[io.MatchType.Input("value", template=template)],
                         outputs=[io.MatchType.Output(template=template, id="same")])

    @classmethod
    def execute(cls, value):
        return io.NodeOutput(value)


class DynamicExtension(ComfyExtension):
    async def on_load(self):
        LOADED["on_load"] += 1

    async def get_node_list(self):
        return [AutogrowSum, AutogrowCount, SlotOffset, MatchPass]


async def comfy_entrypoint():
    return DynamicExtension()
