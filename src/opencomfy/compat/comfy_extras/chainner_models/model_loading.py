"""ComfyUI's ``comfy_extras.chainner_models.model_loading``: ``load_state_dict`` for custom
nodes written before ComfyUI moved its upscale architectures to spandrel."""

from __future__ import annotations


def load_state_dict(state_dict: dict):
    """The spandrel model descriptor (architecture detected from the keys) for ``state_dict``."""
    from spandrel import ModelLoader

    return ModelLoader().load_from_state_dict(state_dict).eval()
