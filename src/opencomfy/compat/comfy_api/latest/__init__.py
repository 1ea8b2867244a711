"""``comfy_api.latest``: the V3 node API (``io``, ``ui``, ``ComfyExtension``, ``ComfyAPI``)."""

from __future__ import annotations

from opencomfy.compat.comfy_api.latest import io, ui  # noqa: F401
from opencomfy.compat.comfy_api.latest._api import ComfyAPI, ComfyAPISync, ComfyExtension
from opencomfy.compat.comfy_api.latest._video import (
    VideoCodec, VideoComponents, VideoContainer, VideoFromComponents, VideoFromFile, VideoInput,
)


class Input:
    """Type aliases for node input values (``Input.Image`` is an IMAGE tensor)."""

    from torch import Tensor as Image  # noqa: N814
    from torch import Tensor as Mask  # noqa: N814
    Audio = dict
    Latent = dict
    Video = VideoInput


class InputImpl:
    """Concrete input implementations."""

    VideoFromFile = VideoFromFile
    VideoFromComponents = VideoFromComponents


class Types:
    """Helper value types."""

    VideoCodec = VideoCodec
    VideoContainer = VideoContainer
    VideoComponents = VideoComponents


IO = io
UI = ui

__all__ = ["ComfyAPI", "ComfyAPISync", "Input", "InputImpl", "Types", "ComfyExtension",
           "io", "IO", "ui", "UI"]
