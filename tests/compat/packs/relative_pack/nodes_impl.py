from . import constants
from .helpers.math_utils import double_plus_offset


class RelativeDouble:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"x": ("INT", {"default": 1})}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "run"
    CATEGORY = constants.CATEGORY

    def run(self, x):
        return (double_plus_offset(x),)


NODE_CLASS_MAPPINGS = {"RelativeDouble": RelativeDouble}
NODE_DISPLAY_NAME_MAPPINGS = {"RelativeDouble": "Double + offset"}
