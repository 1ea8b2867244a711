"""ComfyUI's ``latent_preview``: sampler previews. Without a diffusion model there is no
decoder to preview latents with, so the callback only reports progress."""

from __future__ import annotations

MAX_PREVIEW_RESOLUTION = 512


class LatentPreviewer:
    def decode_latent_to_preview_image(self, preview_format, x0):
        return None


def get_previewer(device=None, latent_format=None):
    """No previewer is available (ComfyUI returns None when previews are off)."""
    return None


def prepare_callback(model=None, steps=0, x0_output_dict=None):
    """A sampler callback ``(step, x0, x, total_steps)`` that advances the node's progress bar."""
    from opencomfy.compat.comfy.utils import ProgressBar

    bar = ProgressBar(steps)

    def callback(step, x0, x, total_steps):
        if x0_output_dict is not None:
            x0_output_dict["x0"] = x0
        bar.update_absolute(step + 1, total_steps, None)

    return callback
