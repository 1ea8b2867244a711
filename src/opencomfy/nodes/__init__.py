"""The core node library: ComfyUI's built-in nodes that need no diffusion model.

Each module under ``opencomfy.nodes`` listed in :data:`CORE_NODE_MODULES` exposes a
module-level ``NODES`` list of ``(class_type, cls, display_name, python_module)`` tuples;
:func:`register_core_nodes` adds them all to an engine ``NodeRegistry``.
"""

from __future__ import annotations

import importlib
import logging

log = logging.getLogger(__name__)

CORE_NODE_MODULES: tuple[str, ...] = (
    "opencomfy.nodes.image_io",
    "opencomfy.nodes.image_transform",
    "opencomfy.nodes.image_batch",
    "opencomfy.nodes.image_filters",
    "opencomfy.nodes.image_compositing",
    "opencomfy.nodes.image_animated",
    "opencomfy.nodes.mask",
    "opencomfy.nodes.latent",
    "opencomfy.nodes.primitives",
    "opencomfy.nodes.strings",
    "opencomfy.nodes.preview_any",
    # Added in parallel by the core-node work (each module may not exist yet: skipped then).
    "opencomfy.nodes.image_extra",
    "opencomfy.nodes.image_morphology",
    "opencomfy.nodes.image_resize_extra",
    "opencomfy.nodes.image_save_extra",
    "opencomfy.nodes.mask_extra",
    "opencomfy.nodes.latent_extra",
    "opencomfy.nodes.logic",
    "opencomfy.nodes.text_extra",
    "opencomfy.nodes.video",
    "opencomfy.nodes.audio",
    "opencomfy.nodes.audio_ops",
    "opencomfy.nodes.files_3d",
    "opencomfy.nodes.webcam",
    "opencomfy.nodes.dataset_loaders",
    "opencomfy.nodes.bounding_boxes",
    "opencomfy.nodes.diffusion",   # empty NODES without the optional diffusion extra
    "opencomfy.nodes.custom_sampling",   # empty NODES without the optional diffusion extra
    "opencomfy.nodes.model_patches",     # empty NODES without the optional diffusion extra
    "opencomfy.nodes.model_patches_attention",   # empty NODES without the optional diffusion extra
    "opencomfy.nodes.model_patches_cache",       # empty NODES without the optional diffusion extra
    "opencomfy.nodes.upscale_model",     # empty NODES without the optional diffusion extra
    "opencomfy.nodes.clip_vision",       # empty NODES without the optional diffusion extra
    "opencomfy.nodes.photomaker",        # empty NODES without the optional diffusion extra
    "opencomfy.nodes.model_merging",     # empty NODES without the optional diffusion extra
    "opencomfy.nodes.model_saving",      # empty NODES without the optional diffusion extra
    "opencomfy.nodes.model_loaders_extra",   # empty NODES without the optional diffusion extra
    "opencomfy.nodes.hooks",             # empty NODES without the optional diffusion extra
    "opencomfy.nodes.sampling_extra",    # empty NODES without the optional diffusion extra
    "opencomfy.nodes.controlnet_extra",  # empty NODES without the optional diffusion extra
    "opencomfy.nodes.context_windows",   # empty NODES without the optional diffusion extra
    # The model families' conditioning/latent/schedule nodes (torch only: always registered).
    "opencomfy.nodes.family_flux",
    "opencomfy.nodes.family_sd3",
    "opencomfy.nodes.family_sd_conditioning",
    "opencomfy.nodes.family_wan",
    "opencomfy.nodes.family_wan_camera",
    "opencomfy.nodes.family_ltxv",
    "opencomfy.nodes.family_video",
    "opencomfy.nodes.family_qwen",
)


def register_core_nodes(registry) -> None:
    """Add every core node class to ``registry`` with ComfyUI's name, display name and module."""
    for module_name in CORE_NODE_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            # TEMPORARY while the team builds the node modules in parallel: a module that does
            # not exist yet is skipped. Only the absence of that module itself is tolerated; an
            # import error inside an existing module still propagates. Remove once all exist.
            if exc.name != module_name:
                raise
            log.warning("core node module %s not found; skipped", module_name)
            continue
        for class_type, cls, display_name, python_module in module.NODES:
            registry.add(class_type, cls, display_name=display_name, python_module=python_module)
