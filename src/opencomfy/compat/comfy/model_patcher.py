"""ComfyUI's ``comfy.model_patcher``: the MODEL class custom nodes check for and build on.

Every MODEL our loaders return is an instance of :class:`ModelPatcher` (``clone()``, the
``set_model_*`` patch methods, ``add_object_patch``, ``add_patches``, wrappers and callbacks).
Importable without torch: using a model still needs the diffusion extra."""

from opencomfy.diffusion.model_patcher import (ModelPatcher, create_model_options_clone,
                                               set_model_options_patch_replace,
                                               set_model_options_post_cfg_function,
                                               set_model_options_pre_cfg_function)

__all__ = ["ModelPatcher", "create_model_options_clone", "set_model_options_patch_replace",
           "set_model_options_post_cfg_function", "set_model_options_pre_cfg_function"]
