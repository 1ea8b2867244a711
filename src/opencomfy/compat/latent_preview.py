"""ComfyUI's ``latent_preview``: sampler step previews, as packs build and call them.

The previewers, the method choice and the step callback are the server's own
(:mod:`opencomfy.diffusion.previews`): a pack's sampler previews exactly as KSampler does, with
the same TAESD decoders (read once), the same ``auto`` (latent2rgb, as current ComfyUI) and the
same throttling. Only ComfyUI's progress route is added: a pack's callback reports through a
``comfy.utils.ProgressBar``, so a pack that installed its own progress hook sees the steps.
``MAX_PREVIEW_RESOLUTION`` and ``default_preview_method`` read the server's configuration when
asked, so they follow it after start-up.
"""

from __future__ import annotations

from opencomfy.compat.comfy.taesd.taesd import TAESD
from opencomfy.diffusion import previews
from opencomfy.diffusion.previews import (
    Latent2RGBPreviewer,
    LatentPreviewer,
    LatentPreviewMethod,
    TAESDPreviewerImpl,
    get_previewer,
    preview_to_image,
    set_preview_method,
)

# MAX_PREVIEW_RESOLUTION and default_preview_method come from __getattr__ below.
__all__ = ["LatentPreviewMethod", "LatentPreviewer", "Latent2RGBPreviewer", "TAESD",
           "TAESDPreviewerImpl", "get_previewer", "prepare_callback", "preview_to_image",
           "set_preview_method"]


def prepare_callback(model=None, steps: int = 0, x0_output_dict=None):
    """A sampler callback ``(step, x0, x, total_steps)``: progress, preview, last x0."""
    from opencomfy.compat.comfy.utils import ProgressBar

    bar = ProgressBar(steps)
    return previews.prepare_callback(model, steps, x0_output_dict, report=bar.update_absolute)


def __getattr__(name: str):
    # ComfyUI fixes both at import; here they track the configuration the server applied later.
    if name == "MAX_PREVIEW_RESOLUTION":
        return previews.preview_size()
    if name == "default_preview_method":
        from opencomfy.compat.comfy.cli_args import args

        return args.preview_method
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
