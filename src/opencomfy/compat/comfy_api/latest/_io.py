"""``comfy_api.latest._io``: ComfyUI's private module name for ``io`` (some packs use it)."""

from opencomfy.compat.comfy_api.latest.io import *  # noqa: F401,F403
from opencomfy.compat.comfy_api.latest.io import __all__  # noqa: F401
from opencomfy.compat.comfy_api.latest._io_node import (  # noqa: F401
    NodeOutput as _NodeOutputInternal, _UIOutput, create_input_dict_v1,
)
from opencomfy.compat.comfy_api.latest._io_types import prune_dict  # noqa: F401
