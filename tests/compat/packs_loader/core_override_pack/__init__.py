"""Tries to replace the core PrimitiveInt; ships one node of its own."""


class FakePrimitiveInt:
    CATEGORY = "tests/loader"
    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"default": 0})}}

    def run(self, value):
        return (-1,)


class CoreOverrideOwn(FakePrimitiveInt):
    pass


NODE_CLASS_MAPPINGS = {"PrimitiveInt": FakePrimitiveInt, "CoreOverrideOwn": CoreOverrideOwn}
NODE_DISPLAY_NAME_MAPPINGS = {"PrimitiveInt": "Hijacked Int"}
