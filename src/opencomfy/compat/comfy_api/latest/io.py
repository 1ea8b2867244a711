"""``comfy_api.latest.io``: everything a V3 node definition uses."""

from opencomfy.compat.comfy_api.latest._io_compound import DynamicCombo, MatchType, MultiType  # noqa: F401
from opencomfy.compat.comfy_api.latest._io_dynamic import (  # noqa: F401
    Autogrow, DynamicInput, DynamicOutput, DynamicSlot,
)
from opencomfy.compat.comfy_api.latest._io_node import (  # noqa: F401
    ComfyNode, Hidden, HiddenHolder, NodeInfoV1, NodeOutput, Schema, _UIOutput, add_to_dict_v1,
    add_to_dict_v3, create_input_dict_v1, is_v3_node,
)
from opencomfy.compat.comfy_api.latest._io_types import *  # noqa: F401,F403
from opencomfy.compat.comfy_api.latest._io_types import (  # noqa: F401
    PLAIN_TYPE_NAMES, Boolean, Combo, ComfyTypeI, ComfyTypeIO, Custom, Float, FolderType, Input,
    Int, MultiCombo, NumberDisplay, Output, RemoteOptions, String, UploadType, Webcam,
    WidgetInput, comfytype,
)

__all__ = [
    "Autogrow", "DynamicInput", "DynamicOutput", "DynamicSlot", "ComfyNode", "Hidden", "HiddenHolder", "NodeInfoV1", "NodeOutput", "Schema",
    "add_to_dict_v1", "add_to_dict_v3", "Boolean", "Combo", "ComfyTypeI", "ComfyTypeIO",
    "Custom", "DynamicCombo", "Float", "FolderType", "Input", "Int", "MatchType", "MultiCombo", "MultiType",
    "NumberDisplay", "Output", "RemoteOptions", "String", "UploadType", "Webcam", "WidgetInput",
    "comfytype", *PLAIN_TYPE_NAMES,
]
