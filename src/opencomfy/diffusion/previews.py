"""Step callbacks for the sampling nodes: progress, interrupts, latent previews, last x0.

:func:`prepare_callback` is ComfyUI's ``latent_preview.prepare_callback`` for our models: a
``callback(step, x0, x, total_steps)`` that reports the running node's progress, sends a cheap
RGB preview of the predicted image when the client asked for previews, and remembers the last
prediction in ``x0_output["x0"]`` (SamplerCustom's ``denoised_output``).
"""

from __future__ import annotations

import torch

PREVIEW_SIZE = 512


def _previews_wanted() -> bool:
    from opencomfy.engine.progress import current_context

    ctx = current_context()
    if ctx is None:
        return False
    extra = ctx.extra_data if isinstance(ctx.extra_data, dict) else {}
    method = extra.get("preview_method")
    if method in (None, "default"):
        try:
            from opencomfy.compat.comfy.cli_args import args
            method = getattr(args.preview_method, "value", args.preview_method)
        except ImportError:  # pragma: no cover (the compat layer ships with the server)
            method = "none"
    return method not in ("none", None)


def preview_image(model, x0: torch.Tensor):
    """The first sample's predicted image, mapped from latent channels to RGB by a fixed matrix."""
    from PIL import Image

    factors = torch.tensor(model.latent_rgb, dtype=torch.float32)
    rgb = x0[0].float().cpu().permute(1, 2, 0) @ factors
    pixels = ((rgb + 1.0) / 2.0).clamp(0, 1).mul(255).round().to(torch.uint8).numpy()
    return ("JPEG", Image.fromarray(pixels), PREVIEW_SIZE)


def prepare_callback(model, steps: int, x0_output: dict | None = None):
    """A ``callback(step, x0, x, total_steps)`` for :meth:`CFGGuider.sample`."""
    from opencomfy.engine.progress import report_progress

    previews = _previews_wanted()

    def callback(step: int, x0: torch.Tensor, x: torch.Tensor, total_steps: int) -> None:
        if x0_output is not None:
            x0_output["x0"] = x0
        preview = preview_image(model, x0) if previews else None
        report_progress(step + 1, total_steps or steps, preview=preview)

    return callback
