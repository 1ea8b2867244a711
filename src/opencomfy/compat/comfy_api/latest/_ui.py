"""``comfy_api.latest._ui``: ComfyUI's private module name for ``ui`` (some packs use it)."""

from opencomfy.compat.comfy_api.latest.ui import *  # noqa: F401,F403
from opencomfy.compat.comfy_api.latest.ui import __all__  # noqa: F401
