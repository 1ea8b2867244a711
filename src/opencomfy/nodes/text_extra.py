"""Text nodes of newer ComfyUI versions (not in the reference catalogue): pulling a value out
of JSON found in text (a language model's reply, say) and saving text to the output folder.
Their inputs were inferred from the stock workflow templates and the embedded node docs.
"""

from __future__ import annotations

import json
import os

from opencomfy.compat import folder_paths
from opencomfy.nodes.v3_dynamic import V3DynamicNode, combo
from opencomfy.nodes.v3_schema import node_entries

_decoder = json.JSONDecoder()


def first_json_object(text: str) -> dict | None:
    """The first JSON object in ``text``, trying each ``{`` in turn (prose around is skipped)."""
    start = text.find("{")
    while start != -1:
        try:
            value, _ = _decoder.raw_decode(text, start)
        except ValueError:
            value = None
        if isinstance(value, dict):
            return value
        start = text.find("{", start + 1)
    return None


class JsonExtractString(V3DynamicNode):
    """The value of ``key`` in the first JSON object of the text, as a string ("" if absent).

    Strings come out as they are; other values as JSON (``3``, ``true``, ``[1, 2]``); a
    missing key, a null value or text without a JSON object give the empty string.
    """

    NODE_ID = "JsonExtractString"
    DISPLAY_NAME = "Extract Text from JSON"
    CATEGORY = "utils/string"
    RELATIVE_PYTHON_MODULE = "comfy_extras.nodes_string"
    RETURN_TYPES = ("STRING",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"json_string": ("STRING", {"multiline": True}),
                             "key": ("STRING", {"multiline": False})}}

    def execute(self, json_string, key):
        found = first_json_object(json_string or "")
        if found is None or found.get(key) is None:
            return ("",)
        value = found[key]
        return (value if isinstance(value, str) else json.dumps(value, ensure_ascii=False),)


class SaveText(V3DynamicNode):
    """Writes the text to ``<prefix>_<counter>.<format>`` in the output folder.

    With ``json``, text that parses as JSON is written pretty-printed (2-space indent);
    anything else is written as it is.
    """

    NODE_ID = "SaveText"
    DISPLAY_NAME = "Save Text"
    CATEGORY = "text"
    RELATIVE_PYTHON_MODULE = "comfy_extras.nodes_text"
    OUTPUT_NODE = True
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("text",)
    FORMATS = ["txt", "csv", "md", "json"]

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "text": ("STRING", {"forceInput": True, "multiline": False}),
            "filename_prefix": ("STRING", {"default": "ComfyUI", "multiline": False}),
            "format": combo(cls.FORMATS, default="txt"),
        }}

    def execute(self, text, filename_prefix="ComfyUI", format="txt"):  # noqa: A002 (input name)
        content = text
        if format == "json":
            try:
                content = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
            except ValueError:
                pass  # not JSON: saved as written
        target = folder_paths.resolve_save_target(filename_prefix,
                                                  folder_paths.get_output_directory(), 1, 1)
        folder = target.full_output_folder
        os.makedirs(folder, exist_ok=True)
        while True:
            counter = folder_paths.claim_save_counter(folder, target.filename)
            name = f"{target.filename}_{counter:05}.{format}"
            try:
                with open(os.path.join(folder, name), "x", encoding="utf-8") as handle:
                    handle.write(content)
                break
            except FileExistsError:  # taken meanwhile: try the next number
                continue
        folder_paths.note_saved(folder, target.filename)
        saved = {"filename": name, "subfolder": target.subfolder, "type": "output"}
        return {"ui": {"text": [text], "files": [saved]}, "result": (text,)}


_CLASSES = [JsonExtractString, SaveText]
NODES = [entry for cls in _CLASSES for entry in node_entries([cls], cls.RELATIVE_PYTHON_MODULE)]
