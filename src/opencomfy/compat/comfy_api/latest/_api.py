"""``ComfyAPI`` / ``ComfyAPISync`` (``api.execution.set_progress``) and ``ComfyExtension``."""

from __future__ import annotations

from abc import ABC, abstractmethod


def _to_preview(preview_image, ignore_size_limit: bool):
    """A PIL image or IMAGE tensor -> ComfyUI's preview tuple (format, PIL image, max size)."""
    if preview_image is None:
        return None
    from PIL import Image

    image = preview_image
    if not isinstance(image, Image.Image) and hasattr(image, "shape"):
        import numpy as np

        tensor = image[0] if len(image.shape) == 4 else image
        image = Image.fromarray(np.clip(tensor.cpu().numpy() * 255, 0, 255).astype(np.uint8))
    if isinstance(image, Image.Image):
        from opencomfy.compat.comfy.cli_args import args

        return (image.format or "JPEG", image, None if ignore_size_limit else args.preview_size)
    return image


def _set_progress(value, max_value, node_id=None, preview_image=None, ignore_size_limit=False):
    from opencomfy.compat.comfy_execution.utils import get_executing_context
    from opencomfy.engine.progress import report_progress

    if node_id is None:
        ctx = get_executing_context()
        node_id = ctx.node_id if ctx is not None else None
    if node_id is None:
        raise ValueError("node_id must be provided if not in executing context")
    report_progress(value, max_value, node_id=node_id,
                    preview=_to_preview(preview_image, ignore_size_limit))


class _Execution:
    async def set_progress(self, value: float, max_value: float, node_id: str | None = None,
                           preview_image=None, ignore_size_limit: bool = False) -> None:
        """Update the progress bar of a node (the running one by default)."""
        _set_progress(value, max_value, node_id, preview_image, ignore_size_limit)


class _ExecutionSync:
    def set_progress(self, value: float, max_value: float, node_id: str | None = None,
                     preview_image=None, ignore_size_limit: bool = False) -> None:
        """Update the progress bar of a node (the running one by default)."""
        _set_progress(value, max_value, node_id, preview_image, ignore_size_limit)


class ComfyAPI:
    """The async API object: ``await ComfyAPI().execution.set_progress(...)``."""

    VERSION = "latest"
    STABLE = False

    def __init__(self) -> None:
        self.execution = _Execution()


class ComfyAPISync:
    """The same API with plain functions: ``ComfyAPISync().execution.set_progress(...)``."""

    VERSION = "latest"
    STABLE = False

    def __init__(self) -> None:
        self.execution = _ExecutionSync()


class ComfyExtension(ABC):
    """What a V3 pack's ``comfy_entrypoint()`` returns."""

    async def on_load(self) -> None:  # noqa: B027 (optional hook: doing nothing is its default)
        """Called once when the extension is loaded."""

    @abstractmethod
    async def get_node_list(self) -> list[type]:
        """The node classes this extension provides."""
