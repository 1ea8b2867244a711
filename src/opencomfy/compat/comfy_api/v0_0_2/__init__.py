"""``comfy_api.v0_0_2``: a version-pinned alias of the V3 API."""

from opencomfy.compat.comfy_api.latest import (  # noqa: F401
    ComfyAPI, ComfyAPISync, ComfyExtension, Input, InputImpl, Types, io, ui,
)

IO = io
UI = ui

__all__ = ["ComfyAPI", "ComfyAPISync", "ComfyExtension", "Input", "InputImpl", "Types",
           "io", "IO", "ui", "UI"]
