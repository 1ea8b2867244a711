"""``comfy_api.input_impl``: the older import path of the video implementations."""

from opencomfy.compat.comfy_api.latest._video import VideoFromComponents, VideoFromFile  # noqa: F401

__all__ = ["VideoFromFile", "VideoFromComponents"]
