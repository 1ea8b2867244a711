"""Logic and number utility nodes of newer ComfyUI versions (not in the 382-class reference).

ComfySwitchNode and CustomCombo follow ComfyUI's ``comfy_extras/nodes_logic.py``; the
others (Math Expression, Number Convert, Seed, Color Picker, Resolution Selector) are single
node modules there. Their inputs were inferred from the stock workflow templates and the
embedded node docs; see :mod:`opencomfy.nodes.v3_dynamic` for the two views of the inputs.
"""

from __future__ import annotations

import math
import string
import sys

from opencomfy.nodes.math_expression import ExpressionError, evaluate
from opencomfy.nodes.v3_dynamic import ANY, V3DynamicNode, autogrow_names, combo, matchtype
from opencomfy.nodes.v3_schema import node_entries

_MISSING = object()  # an input that is not connected at all (None: linked, not yet evaluated)


class ComfySwitchNode(V3DynamicNode):
    """Passes ``on_true`` or ``on_false`` on; only the chosen branch is evaluated (lazy)."""

    NODE_ID = "ComfySwitchNode"
    DISPLAY_NAME = "If/Else Switch"
    CATEGORY = "utilities/logic"
    RELATIVE_PYTHON_MODULE = "comfy_extras.nodes_logic"
    EXPERIMENTAL = True
    RETURN_TYPES = (ANY,)
    RETURN_NAMES = ("output",)
    OBJECT_INFO_OUTPUTS = ("COMFY_MATCHTYPE_V3",)
    OUTPUT_MATCHTYPES = ["switch"]

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"switch": ("BOOLEAN", {})},
                "optional": {"on_false": (ANY, {"lazy": True}), "on_true": (ANY, {"lazy": True})}}

    @classmethod
    def object_info_inputs(cls):
        return {"required": {"switch": ("BOOLEAN", {})},
                "optional": {"on_false": matchtype("switch", lazy=True),
                             "on_true": matchtype("switch", lazy=True)}}

    def check_lazy_status(self, switch, on_false=_MISSING, on_true=_MISSING):
        if switch and on_true is None:
            return ["on_true"]
        if not switch and on_false is None:
            return ["on_false"]
        return []

    def execute(self, switch, on_false=_MISSING, on_true=_MISSING):
        chosen = on_true if switch else on_false
        return (None if chosen is _MISSING else chosen,)


class CustomCombo(V3DynamicNode):
    """A dropdown whose options the user writes in the frontend: its choice and index.

    The options live only in the workflow, so the choice is not checked against a list.
    """

    NODE_ID = "CustomCombo"
    DISPLAY_NAME = "Custom Combo"
    CATEGORY = "utilities"
    RELATIVE_PYTHON_MODULE = "comfy_extras.nodes_logic"
    EXPERIMENTAL = True
    RETURN_TYPES = ("STRING", "INT")
    RETURN_NAMES = ("STRING", "INDEX")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"choice": (ANY, {})},
                "optional": {"index": ("INT", {"default": 0})}}

    @classmethod
    def object_info_inputs(cls):
        return {"required": {"choice": combo([])}}

    @classmethod
    def VALIDATE_INPUTS(cls, choice, index=0, **_widgets):
        return True

    def execute(self, choice, index=0):
        return (str(choice), int(index))


_VALUE_NAMES = list(string.ascii_lowercase)
_VALUE_TYPES = "FLOAT,INT,BOOLEAN"


class ComfyMathExpression(V3DynamicNode):
    """Evaluates a formula over the inputs ``a``, ``b``, ... (and ``values``, all of them).

    The evaluator is :mod:`opencomfy.nodes.math_expression`: no ``eval``, numbers and a fixed
    set of math functions only, sizes capped. The result is given as FLOAT, INT (truncated)
    and BOOLEAN (non-zero).
    """

    NODE_ID = "ComfyMathExpression"
    DISPLAY_NAME = "Math Expression"
    CATEGORY = "utilities"
    RELATIVE_PYTHON_MODULE = "comfy_extras.nodes_math"
    RETURN_TYPES = ("FLOAT", "INT", "BOOLEAN")
    RETURN_NAMES = ("FLOAT", "INT", "BOOL")

    @classmethod
    def INPUT_TYPES(cls):
        slots = {f"values.{name}": (_VALUE_TYPES, {}) for name in _VALUE_NAMES}
        return {"required": {"expression": ("STRING", {"default": "a + b", "multiline": True})},
                "optional": slots}

    @classmethod
    def object_info_inputs(cls):
        return {"required": {
            "expression": ("STRING", {"default": "a + b", "multiline": True}),
            "values": autogrow_names("value", _VALUE_TYPES, _VALUE_NAMES, min_count=1),
        }}

    def execute(self, expression, **inputs):
        values = {key.split(".", 1)[1]: value for key, value in sorted(inputs.items())
                  if key.startswith("values.") and value is not None}
        names = dict(values)
        names["values"] = list(values.values())
        try:
            result = evaluate(expression, names)
        except ExpressionError as exc:
            raise ValueError(f"Math Expression '{expression}': {exc}") from None
        if not isinstance(result, (int, float)):
            raise ValueError(f"Math Expression '{expression}' must give a number, "
                             f"not {type(result).__name__}")
        try:
            as_float = float(result)
        except OverflowError:
            raise ValueError(f"Math Expression '{expression}' gave a number too large for a "
                             "float") from None
        if not math.isfinite(as_float):
            raise ValueError(f"Math Expression '{expression}' gave a non-finite result")
        return (as_float, int(result), bool(result))


class ComfyNumberConvert(V3DynamicNode):
    """An INT, FLOAT, numeric STRING or BOOLEAN as both FLOAT and INT (truncated)."""

    NODE_ID = "ComfyNumberConvert"
    DISPLAY_NAME = "Number Convert"
    CATEGORY = "math"
    RELATIVE_PYTHON_MODULE = "comfy_extras.nodes_number_convert"
    RETURN_TYPES = ("FLOAT", "INT")
    RETURN_NAMES = ("FLOAT", "INT")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT,FLOAT,STRING,BOOLEAN", {"display_name": "value"})}}

    def execute(self, value):
        if isinstance(value, str):
            text = value.strip()
            if not text:
                raise ValueError("Cannot convert an empty string to a number")
            try:
                number = int(text)
            except ValueError:
                try:
                    number = float(text)
                except ValueError:
                    raise ValueError(f"Cannot convert '{value}' to a number") from None
        elif isinstance(value, (bool, int, float)):
            number = value
        else:
            raise ValueError(f"Cannot convert a {type(value).__name__} to a number")
        as_float = float(number)
        if not math.isfinite(as_float):
            raise ValueError(f"Cannot convert the non-finite value {value!r} to a number")
        return (as_float, int(number))


class SeedNode(V3DynamicNode):
    """A seed value to share between nodes (fixed unless the frontend changes it)."""

    NODE_ID = "SeedNode"
    DISPLAY_NAME = "Seed"
    CATEGORY = "utilities"
    RELATIVE_PYTHON_MODULE = "comfy_extras.nodes_seed"
    RETURN_TYPES = ("INT",)
    RETURN_NAMES = ("seed",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"seed": ("INT", {"min": 0, "max": sys.maxsize,
                                              "control_after_generate": "fixed"})}}

    def execute(self, seed):
        return (seed,)


class ColorToRGBInt(V3DynamicNode):
    """``#RRGGBB`` or ``#RRGGBBAA`` as one RGB integer, the ``#RRGGBB`` part and the alpha."""

    NODE_ID = "ColorToRGBInt"
    DISPLAY_NAME = "Color Picker"
    CATEGORY = "utilities"
    RELATIVE_PYTHON_MODULE = "comfy_extras.nodes_color"
    RETURN_TYPES = ("INT", "COLOR", "FLOAT")
    RETURN_NAMES = ("rgb_int", "hex", "alpha")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"color": ("COLOR", {})}}

    def execute(self, color):
        red, green, blue, alpha = parse_hex_color(color)
        return ((red << 16) + (green << 8) + blue, color[:7], alpha)


def parse_hex_color(color: str) -> tuple[int, int, int, float]:
    """(r, g, b, alpha 0..1) of ``#RRGGBB`` / ``#RRGGBBAA``; ValueError for anything else."""
    text = color if isinstance(color, str) else ""
    if len(text) not in (7, 9) or not text.startswith("#") \
            or any(c not in string.hexdigits for c in text[1:]):
        raise ValueError(f"Color must be in format #RRGGBB or #RRGGBBAA, got {color!r}")
    alpha = int(text[7:9], 16) / 255.0 if len(text) == 9 else 1.0
    return int(text[1:3], 16), int(text[3:5], 16), int(text[5:7], 16), alpha


ASPECT_RATIOS = {
    "1:1 (Square)": (1, 1), "2:3 (Portrait Photo)": (2, 3), "3:2 (Photo)": (3, 2),
    "3:4 (Portrait Standard)": (3, 4), "4:3 (Standard)": (4, 3),
    "9:16 (Portrait Widescreen)": (9, 16), "16:9 (Widescreen)": (16, 9),
    "21:9 (Ultrawide)": (21, 9),
}


class ResolutionSelector(V3DynamicNode):
    """Width and height for an aspect ratio and a pixel count, each a multiple of ``multiple``.

    One megapixel is 1024 x 1024 pixels, as elsewhere in ComfyUI.
    """

    NODE_ID = "ResolutionSelector"
    DISPLAY_NAME = "Resolution Selector"
    CATEGORY = "utilities"
    RELATIVE_PYTHON_MODULE = "comfy_extras.nodes_resolution"
    RETURN_TYPES = ("INT", "INT")
    RETURN_NAMES = ("width", "height")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "aspect_ratio": combo(list(ASPECT_RATIOS), default="1:1 (Square)"),
            "megapixels": ("FLOAT", {"default": 1.0, "min": 0.1, "max": 16.0, "step": 0.1}),
            "multiple": ("INT", {"default": 8, "min": 8, "max": 128, "step": 4}),
        }}

    def execute(self, aspect_ratio, megapixels, multiple=8):
        ratio_w, ratio_h = ASPECT_RATIOS[aspect_ratio]
        pixels = megapixels * 1024 * 1024
        width = math.sqrt(pixels * ratio_w / ratio_h)
        height = pixels / width
        return (max(multiple, round(width / multiple) * multiple),
                max(multiple, round(height / multiple) * multiple))


_CLASSES = [ComfySwitchNode, CustomCombo, ComfyMathExpression, ComfyNumberConvert, SeedNode,
            ColorToRGBInt, ResolutionSelector]
NODES = [entry for cls in _CLASSES for entry in node_entries([cls], cls.RELATIVE_PYTHON_MODULE)]
