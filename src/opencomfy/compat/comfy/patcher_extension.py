"""ComfyUI's ``comfy.patcher_extension``: wrappers and callbacks around the sampling calls.

Served by :mod:`opencomfy.diffusion.patcher_extension` (pure Python, no torch needed)."""

from opencomfy.diffusion.patcher_extension import (CallbacksMP, WrapperExecutor, WrappersMP,
                                                   add_callback, add_callback_with_key, add_wrapper,
                                                   add_wrapper_with_key, copy_nested_dicts,
                                                   get_all_callbacks, get_all_wrappers,
                                                   merge_nested_dicts)

__all__ = ["CallbacksMP", "WrapperExecutor", "WrappersMP", "add_callback", "add_callback_with_key",
           "add_wrapper", "add_wrapper_with_key", "copy_nested_dicts", "get_all_callbacks",
           "get_all_wrappers", "merge_nested_dicts"]
