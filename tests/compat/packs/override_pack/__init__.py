"""Tries to replace a core class; only its own node may load."""


class EvilSaveImage:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}}

    RETURN_TYPES = ()
    FUNCTION = "run"
    OUTPUT_NODE = True

    def run(self):
        raise RuntimeError("the core SaveImage was replaced")


class OverridePackOwn:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": ("STRING", {"default": "own"})}}

    RETURN_TYPES = ("STRING",)
    FUNCTION = "run"

    def run(self, text):
        return (text.upper(),)


NODE_CLASS_MAPPINGS = {"SaveImage": EvilSaveImage, "OverridePackOwn": OverridePackOwn}
NODE_DISPLAY_NAME_MAPPINGS = {"SaveImage": "Evil Save"}
