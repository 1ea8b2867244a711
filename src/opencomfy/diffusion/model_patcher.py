"""The MODEL value: a shared model plus this value's own patches (ComfyUI's ``ModelPatcher``).

Every MODEL a node returns is a :class:`ModelPatcher`. :meth:`ModelPatcher.clone` is cheap: the
clone shares the model (the UNet weights) and copies only the patch lists and options, so a node
that patches a clone never changes the MODEL it was given. What a clone may carry:

- ``model_options``: functions the sampler calls (``sampler_cfg_function``, the pre- and
  post-CFG lists, ``model_function_wrapper``, ``denoise_mask_function``...) and, under
  ``transformer_options``, the UNet patches (``patches``: attention and block patches;
  ``patches_replace``: attention replacements keyed by ``(block_name, number[, index])``);
- ``object_patches``: attributes of the model replaced while this MODEL runs (``model_sampling``,
  ``latent_format``, ``manual_cast_dtype``, or a dotted path into the UNet);
- ``patches``: weight patches (LoRA, ``add_patches`` diffs) applied to the shared weights for the
  duration of a run and taken off afterwards (see :mod:`memory`);
- ``wrappers`` / ``callbacks`` (:mod:`patcher_extension`).

Importable without torch, so that ``comfy.model_patcher`` works for custom nodes everywhere.
"""

from __future__ import annotations

import copy
import inspect
import uuid
from typing import Any, Callable

from opencomfy.diffusion import patcher_extension as ext


def _block_key(block_name: str, number: int, transformer_index: int | None):
    return (block_name, number) if transformer_index is None else (block_name, number, transformer_index)


def set_model_options_patch_replace(model_options: dict, patch, name: str, block_name: str,
                                    number: int, transformer_index: int | None = None) -> dict:
    """``model_options`` with an attention replacement added (the dicts on the way are copied,
    so options shared with another MODEL or run stay as they were)."""
    to = dict(model_options.get("transformer_options", {}))
    replace = dict(to.get("patches_replace", {}))
    replace[name] = {**replace.get(name, {}), _block_key(block_name, number, transformer_index): patch}
    to["patches_replace"] = replace
    return {**model_options, "transformer_options": to}


def set_model_options_post_cfg_function(model_options: dict, post_cfg_function,
                                        disable_cfg1_optimization: bool = False) -> dict:
    model_options["sampler_post_cfg_function"] = \
        model_options.get("sampler_post_cfg_function", []) + [post_cfg_function]
    if disable_cfg1_optimization:
        model_options["disable_cfg1_optimization"] = True
    return model_options


def set_model_options_pre_cfg_function(model_options: dict, pre_cfg_function,
                                       disable_cfg1_optimization: bool = False) -> dict:
    model_options["sampler_pre_cfg_function"] = \
        model_options.get("sampler_pre_cfg_function", []) + [pre_cfg_function]
    if disable_cfg1_optimization:
        model_options["disable_cfg1_optimization"] = True
    return model_options


def create_model_options_clone(model_options: dict) -> dict:
    return ext.copy_nested_dicts(model_options)


def get_attr(obj, path: str):
    for name in path.split("."):
        obj = getattr(obj, name)
    return obj


def set_attr(obj, path: str, value):
    """Set a dotted attribute; returns the value it replaced."""
    *parents, name = path.split(".")
    for parent in parents:
        obj = getattr(obj, parent)
    previous = getattr(obj, name)
    setattr(obj, name, value)
    return previous


class ModelPatcher:
    """A model with the patches of one MODEL value (see the module docstring)."""

    def __init__(self, model, load_device=None, offload_device=None, size: int = 0,
                 weight_inplace_update: bool = False):
        self.model = model
        self.load_device = load_device
        self.offload_device = offload_device
        self._size = size
        self.weight_inplace_update = weight_inplace_update
        self.patches: list = []              # [(weight patch with .apply(strength), strength)]
        self.object_patches: dict[str, Any] = {}
        self.object_patches_backup: dict[str, Any] = {}
        self.model_options: dict = {"transformer_options": {}}
        self.wrappers: dict = {}
        self.callbacks: dict = {}
        self.attachments: dict = {}
        self.additional_models: dict = {}
        self.parent = None
        self.patches_uuid = uuid.uuid4()

    # --- cloning ---------------------------------------------------------------------------

    def clone(self):
        """A new MODEL sharing the weights, with copies of every patch list and option."""
        n = copy.copy(self)
        n.patches = list(self.patches)
        n.object_patches = dict(self.object_patches)
        n.object_patches_backup = {}
        n.model_options = create_model_options_clone(self.model_options)
        n.wrappers = ext.copy_nested_dicts(self.wrappers)
        n.callbacks = ext.copy_nested_dicts(self.callbacks)
        n.attachments = dict(self.attachments)
        n.additional_models = {k: list(v) for k, v in self.additional_models.items()}
        n.parent = self
        for callback in self.get_all_callbacks(ext.CallbacksMP.ON_CLONE):
            callback(self, n)
        return n

    def is_clone(self, other) -> bool:
        return getattr(other, "model", None) is self.model

    def clone_has_same_weights(self, clone) -> bool:
        if not self.is_clone(clone) or len(self.patches) != len(clone.patches):
            return False
        return all(a[0] is b[0] and a[1] == b[1] for a, b in zip(self.patches, clone.patches, strict=True))

    # --- sampler functions -------------------------------------------------------------------

    def set_model_sampler_cfg_function(self, sampler_cfg_function: Callable,
                                       disable_cfg1_optimization: bool = False) -> None:
        """Replace the CFG combination: ``fn(args) -> noise prediction`` (``args["cond"]`` and
        ``["uncond"]`` are noise predictions, ``x - denoised``)."""
        if len(inspect.signature(sampler_cfg_function).parameters) == 3:
            old_style = sampler_cfg_function   # the first API: fn(cond, uncond, cond_scale)
            self.model_options["sampler_cfg_function"] = \
                lambda args: old_style(args["cond"], args["uncond"], args["cond_scale"])
        else:
            self.model_options["sampler_cfg_function"] = sampler_cfg_function
        if disable_cfg1_optimization:
            self.model_options["disable_cfg1_optimization"] = True

    def set_model_sampler_post_cfg_function(self, post_cfg_function: Callable,
                                            disable_cfg1_optimization: bool = False) -> None:
        set_model_options_post_cfg_function(self.model_options, post_cfg_function, disable_cfg1_optimization)

    def set_model_sampler_pre_cfg_function(self, pre_cfg_function: Callable,
                                           disable_cfg1_optimization: bool = False) -> None:
        set_model_options_pre_cfg_function(self.model_options, pre_cfg_function, disable_cfg1_optimization)

    def set_model_sampler_calc_cond_batch_function(self, fn: Callable) -> None:
        self.model_options["sampler_calc_cond_batch_function"] = fn

    def set_model_unet_function_wrapper(self, unet_wrapper_function: Callable) -> None:
        """``fn(apply_model, {"input", "timestep", "c", "cond_or_uncond"}) -> denoised``."""
        self.model_options["model_function_wrapper"] = unet_wrapper_function

    def set_model_denoise_mask_function(self, denoise_mask_function: Callable) -> None:
        """``fn(sigma, denoise_mask, extra_options={"model", "sigmas"}) -> mask`` (inpainting)."""
        self.model_options["denoise_mask_function"] = denoise_mask_function

    # --- UNet patches ------------------------------------------------------------------------

    def set_model_patch(self, patch, name: str) -> None:
        to = self.model_options.setdefault("transformer_options", {})
        patches = to.setdefault("patches", {})
        patches[name] = patches.get(name, []) + [patch]

    def set_model_patch_replace(self, patch, name: str, block_name: str, number: int,
                                transformer_index: int | None = None) -> None:
        to = self.model_options.setdefault("transformer_options", {})
        replace = to.setdefault("patches_replace", {})
        replace.setdefault(name, {})[_block_key(block_name, number, transformer_index)] = patch

    def set_model_attn1_patch(self, patch) -> None:
        self.set_model_patch(patch, "attn1_patch")

    def set_model_attn2_patch(self, patch) -> None:
        self.set_model_patch(patch, "attn2_patch")

    def set_model_attn1_replace(self, patch, block_name: str, number: int,
                                transformer_index: int | None = None) -> None:
        self.set_model_patch_replace(patch, "attn1", block_name, number, transformer_index)

    def set_model_attn2_replace(self, patch, block_name: str, number: int,
                                transformer_index: int | None = None) -> None:
        self.set_model_patch_replace(patch, "attn2", block_name, number, transformer_index)

    def set_model_attn1_output_patch(self, patch) -> None:
        self.set_model_patch(patch, "attn1_output_patch")

    def set_model_attn2_output_patch(self, patch) -> None:
        self.set_model_patch(patch, "attn2_output_patch")

    def set_model_input_block_patch(self, patch) -> None:
        self.set_model_patch(patch, "input_block_patch")

    def set_model_input_block_patch_after_skip(self, patch) -> None:
        self.set_model_patch(patch, "input_block_patch_after_skip")

    def set_model_output_block_patch(self, patch) -> None:
        self.set_model_patch(patch, "output_block_patch")

    def model_patches_to(self, device) -> None:
        """Move patch objects that hold weights (``.to(device)``) with the model."""
        to = self.model_options.get("transformer_options", {})
        for group in (to.get("patches", {}), to.get("patches_replace", {})):
            for value in group.values():
                items = value.values() if isinstance(value, dict) else value
                for patch in items:
                    # Patches that are modules (hold weights) follow the model; functions do not.
                    if hasattr(patch, "to") and not inspect.isfunction(patch):
                        patch.to(device)

    def model_patches_models(self) -> list:
        return []

    # --- object patches ----------------------------------------------------------------------

    def add_object_patch(self, name: str, obj) -> None:
        self.object_patches[name] = obj

    def get_model_object(self, name: str):
        """An attribute of the model as this MODEL sees it (its object patch, if it has one)."""
        if name in self.object_patches:
            return self.object_patches[name]
        if name in self.object_patches_backup:
            return self.object_patches_backup[name]
        return get_attr(self.model, name)

    def set_model_compute_dtype(self, dtype) -> None:
        self.add_object_patch("manual_cast_dtype", dtype)

    @property
    def model_sampling(self):
        return self.get_model_object("model_sampling")

    def patch_model(self, device_to=None, lowvram_model_memory: int = 0, load_weights: bool = True,
                    force_patch_weights: bool = False):
        """Put this MODEL's object patches onto the shared model (undone by :meth:`unpatch_model`).

        Weight patches are applied by :func:`opencomfy.diffusion.memory.models_in_use`.
        """
        for name, value in self.object_patches.items():
            previous = set_attr(self.model, name, value)
            self.object_patches_backup.setdefault(name, previous)
        return self.model

    def unpatch_model(self, device_to=None, unpatch_weights: bool = True) -> None:
        for name, value in self.object_patches_backup.items():
            set_attr(self.model, name, value)
        self.object_patches_backup = {}
        for callback in self.get_all_callbacks(ext.CallbacksMP.ON_DETACH):
            callback(self, unpatch_weights)

    # --- weights -----------------------------------------------------------------------------

    def add_patches(self, patches: dict, strength_patch: float = 1.0, strength_model: float = 1.0) -> list:
        """Add weight patches ``{key: patch}`` (keys as in ComfyUI's state dicts, e.g.
        ``diffusion_model.input_blocks.1.1.proj_in.weight``; patches a diff tensor, ``("diff",
        (tensor,))`` or ``("lora", (up, down, alpha, ...))``). Returns the keys that matched."""
        from opencomfy.diffusion.weight_patches import WeightPatch

        patch = WeightPatch.from_comfy(self, patches, strength_patch, strength_model)
        if len(patch):
            self.patches.append((patch, 1.0))
            self.patches_uuid = uuid.uuid4()
        return patch.keys

    def model_state_dict(self, filter_prefix: str | None = None) -> dict:
        """The model's weights under ComfyUI's key names (``diffusion_model.<LDM path>``)."""
        from opencomfy.diffusion.weight_patches import comfy_state_dict

        sd = comfy_state_dict(self)
        if filter_prefix is not None:
            sd = {k: v for k, v in sd.items() if k.startswith(filter_prefix)}
        return sd

    def get_key_patches(self, filter_prefix: str | None = None) -> dict:
        """``{key: [weight, ...]}`` for each weight (the original weight first, as ComfyUI)."""
        return {k: [v] for k, v in self.model_state_dict(filter_prefix).items()}

    def model_size(self) -> int:
        return self.size

    @property
    def size(self) -> int:
        if not self._size:
            from opencomfy.diffusion.memory import module_bytes

            self._size = sum(module_bytes(m) for m in self.modules())
        return self._size

    @size.setter
    def size(self, value: int) -> None:
        self._size = value

    def modules(self) -> list:
        return [self.model.diffusion_model]

    def model_dtype(self):
        return self.model.get_dtype()

    def memory_required(self, input_shape) -> int:
        return self.model.memory_required(input_shape)

    def loaded_size(self) -> int:
        return self.size

    def current_loaded_device(self):
        for p in self.model.diffusion_model.parameters():
            return p.device
        return self.offload_device

    def get_free_memory(self, device) -> int:
        from opencomfy.diffusion.memory import free_device_bytes

        return free_device_bytes(device)

    # --- wrappers, callbacks, attachments ------------------------------------------------------

    def add_wrapper_with_key(self, wrapper_type: str, key: str | None, wrapper: Callable) -> None:
        self.wrappers.setdefault(wrapper_type, {}).setdefault(key, []).append(wrapper)

    def add_wrapper(self, wrapper_type: str, wrapper: Callable) -> None:
        self.add_wrapper_with_key(wrapper_type, None, wrapper)

    def get_wrappers(self, wrapper_type: str, key: str | None) -> list:
        return self.wrappers.get(wrapper_type, {}).get(key, [])

    def get_all_wrappers(self, wrapper_type: str) -> list:
        return [w for ws in self.wrappers.get(wrapper_type, {}).values() for w in ws]

    def remove_wrappers_with_key(self, wrapper_type: str, key: str | None) -> None:
        self.wrappers.get(wrapper_type, {}).pop(key, None)

    def add_callback_with_key(self, call_type: str, key: str | None, callback: Callable) -> None:
        self.callbacks.setdefault(call_type, {}).setdefault(key, []).append(callback)

    def add_callback(self, call_type: str, callback: Callable) -> None:
        self.add_callback_with_key(call_type, None, callback)

    def get_callbacks(self, call_type: str, key: str | None) -> list:
        return self.callbacks.get(call_type, {}).get(key, [])

    def get_all_callbacks(self, call_type: str) -> list:
        return [c for cs in self.callbacks.get(call_type, {}).values() for c in cs]

    def remove_callbacks_with_key(self, call_type: str, key: str | None) -> None:
        self.callbacks.get(call_type, {}).pop(key, None)

    def set_attachments(self, key: str, attachment) -> None:
        self.attachments[key] = attachment

    def get_attachment(self, key: str):
        return self.attachments.get(key)

    def remove_attachments(self, key: str) -> None:
        self.attachments.pop(key, None)

    def set_additional_models(self, key: str, models: list) -> None:
        self.additional_models[key] = list(models)

    def get_additional_models(self) -> list:
        return [m for ms in self.additional_models.values() for m in ms]

    def get_nested_additional_models(self) -> list:
        return self.get_additional_models()

    def pre_run(self) -> None:
        for callback in self.get_all_callbacks(ext.CallbacksMP.ON_PRE_RUN):
            callback(self)

    def cleanup(self) -> None:
        for callback in self.get_all_callbacks(ext.CallbacksMP.ON_CLEANUP):
            callback(self)

    def __repr__(self) -> str:
        return f"<ModelPatcher patches={len(self.patches)} object_patches={sorted(self.object_patches)}>"
