"""``comfy_api.util``: the older import path of the video helper types."""

from opencomfy.compat.comfy_api.latest._video import (  # noqa: F401
    VideoCodec, VideoComponents, VideoContainer,
)

__all__ = ["VideoCodec", "VideoContainer", "VideoComponents"]
