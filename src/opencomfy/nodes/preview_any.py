"""PreviewAny (ComfyUI ``comfy_extras/nodes_preview_any.py``): show any value as text.

The output's ``ui`` is ``{"text": [value]}``: a string as is, an int/float/bool through
``str``, anything else as JSON when it serialises, else through ``str`` (so tensors show
torch's own print-out), and ``"None"`` for no value.
"""

from __future__ import annotations

import json

from opencomfy.compat.comfy.comfy_types.node_typing import IO


# ComfyUI's IO.ANY ("*"): compares unequal to no type, so any link may feed the input.
ANY = IO.ANY


def preview_text(source) -> str:
    """The text PreviewAny shows for ``source``."""
    if source is None:
        return "None"
    if isinstance(source, str):
        return source
    if isinstance(source, (int, float, bool)):
        return str(source)
    try:
        return json.dumps(source)
    except Exception:
        try:
            return str(source)
        except Exception:
            return "source exists, but could not be serialized."


class PreviewAny:
    """Output node showing its input as text in the UI."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"source": (ANY, {})}}

    RETURN_TYPES = ()
    FUNCTION = "main"
    OUTPUT_NODE = True
    CATEGORY = "utils"

    def main(self, source=None):
        return {"ui": {"text": [preview_text(source)]}}


NODES = [
    ("PreviewAny", PreviewAny, "Preview Any", "comfy_extras.nodes_preview_any"),
]
