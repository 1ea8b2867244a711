"""ComfyUI's ``comfy_execution.progress``: the progress registry of the running prompt."""

from __future__ import annotations

from typing import Any, NamedTuple


class PreviewImageTuple(NamedTuple):
    image_type: str
    image: Any
    max_size: int | None


class _ProgressState:
    """Forwards ``update_progress`` to the engine's progress reporting."""

    def update_progress(self, node_id: str, value: float, max_value: float, image=None) -> None:
        from opencomfy.engine.progress import report_progress

        report_progress(value, max_value, node_id=node_id, preview=image)


_STATE = _ProgressState()


def get_progress_state() -> _ProgressState:
    return _STATE


__all__ = ["PreviewImageTuple", "get_progress_state"]
