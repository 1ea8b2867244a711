"""``comfy_api.input``: the older import path of the V3 input value types."""

from torch import Tensor as ImageInput  # noqa: F401
from torch import Tensor as MaskInput  # noqa: F401

from opencomfy.compat.comfy_api.latest._video import VideoInput  # noqa: F401

AudioInput = dict
LatentInput = dict

__all__ = ["ImageInput", "MaskInput", "AudioInput", "LatentInput", "VideoInput"]
