"""ComfyUI's ``latent_preview``: sampler step previews, as packs build and call them.

A previewer turns the predicted latent of a step into a small image: ``Latent2RGBPreviewer``
by a fixed channel -> RGB matrix (the latent format's published factors), ``TAESDPreviewerImpl``
with the tiny TAESD decoder (``comfy.taesd.taesd``, files in ``models/vae_approx``). ``prepare_callback`` gives a
sampler callback that advances the node's progress bar and attaches the preview, which the
server sends to the client as a binary preview frame. Whether to preview follows the
prompt's ``preview_method`` (extra_data) or, by default, ``--preview-method``.
"""

from __future__ import annotations

import torch
from PIL import Image

from opencomfy.compat.comfy.cli_args import LatentPreviewMethod, args
from opencomfy.compat.comfy.taesd.taesd import TAESD

MAX_PREVIEW_RESOLUTION = args.preview_size
default_preview_method = args.preview_method

__all__ = ["LatentPreviewMethod", "LatentPreviewer", "Latent2RGBPreviewer", "TAESD",
           "TAESDPreviewerImpl", "get_previewer", "prepare_callback", "preview_to_image",
           "set_preview_method", "MAX_PREVIEW_RESOLUTION"]


def preview_to_image(latent_image: torch.Tensor, do_scale: bool = True) -> Image.Image:
    """An ``[H, W, 3]`` tensor in -1..1 (or 0..1 without ``do_scale``) as a PIL image."""
    pixels = (latent_image + 1.0) / 2.0 if do_scale else latent_image
    pixels = pixels.clamp(0, 1).mul(255).round().to(device="cpu", dtype=torch.uint8)
    return Image.fromarray(pixels.numpy())


class LatentPreviewer:
    """Base previewer: ``decode_latent_to_preview(x0)`` gives a PIL image of the first sample."""

    def decode_latent_to_preview(self, x0: torch.Tensor) -> Image.Image:
        raise NotImplementedError

    def decode_latent_to_preview_image(self, preview_format: str, x0: torch.Tensor):
        """The ``(format, image, max size)`` triple the progress bar sends as a preview."""
        return (preview_format, self.decode_latent_to_preview(x0), args.preview_size)


class Latent2RGBPreviewer(LatentPreviewer):
    """A linear map from latent channels to RGB (plus a bias), optionally after a reshape."""

    def __init__(self, latent_rgb_factors, latent_rgb_factors_bias=None, latent_rgb_factors_reshape=None):
        self.latent_rgb_factors = torch.tensor(latent_rgb_factors, device="cpu").transpose(0, 1)
        self.latent_rgb_factors_bias = (torch.tensor(latent_rgb_factors_bias, device="cpu")
                                        if latent_rgb_factors_bias is not None else None)
        self.latent_rgb_factors_reshape = latent_rgb_factors_reshape

    def decode_latent_to_preview(self, x0: torch.Tensor) -> Image.Image:
        if self.latent_rgb_factors_reshape is not None:
            x0 = self.latent_rgb_factors_reshape(x0)
        weight = self.latent_rgb_factors.to(x0.device, x0.dtype)
        bias = self.latent_rgb_factors_bias
        if bias is not None:
            bias = bias.to(x0.device, x0.dtype)
        # First sample; of a video latent [B, C, T, H, W] its first frame.
        sample = x0[0, :, 0] if x0.ndim == 5 else x0[0]
        return preview_to_image(torch.nn.functional.linear(sample.movedim(0, -1), weight, bias))


class TAESDPreviewerImpl(LatentPreviewer):
    """Previews decoded by a :class:`TAESD` decoder."""

    def __init__(self, taesd: TAESD):
        self.taesd = taesd

    def decode_latent_to_preview(self, x0: torch.Tensor) -> Image.Image:
        with torch.no_grad():
            sample = self.taesd.decode(x0[:1].to(next(self.taesd.parameters()).dtype))[0]
        return preview_to_image(sample.movedim(0, 2).float())


_override: LatentPreviewMethod | None = None


def set_preview_method(override) -> None:
    """Use ``override`` (a LatentPreviewMethod or its value) instead of the configured method."""
    global _override
    if override in (None, "default"):
        _override = None
    else:
        _override = override if isinstance(override, LatentPreviewMethod) \
            else LatentPreviewMethod.from_string(override)


def _current_method() -> LatentPreviewMethod:
    """The prompt's preview_method (extra_data), else the override, else ``--preview-method``."""
    from opencomfy.engine.progress import current_context

    ctx = current_context()
    extra = ctx.extra_data if ctx is not None and isinstance(ctx.extra_data, dict) else {}
    asked = LatentPreviewMethod.from_string(extra.get("preview_method") or "")
    if asked is not None:
        return asked
    method = _override or args.preview_method
    return method if isinstance(method, LatentPreviewMethod) else \
        LatentPreviewMethod.from_string(str(method)) or LatentPreviewMethod.NoPreviews


def get_previewer(device=None, latent_format=None) -> LatentPreviewer | None:
    """The previewer for ``latent_format`` under the current method; None when previews are
    off or the format has neither a TAESD decoder file nor RGB factors."""
    method = _current_method()
    if latent_format is None or method == LatentPreviewMethod.NoPreviews:
        return None
    name = getattr(latent_format, "taesd_decoder_name", None)
    if method == LatentPreviewMethod.TAESD and name:
        from opencomfy.compat import folder_paths

        found = next((f for f in folder_paths.get_filename_list("vae_approx") if f.startswith(name + ".")), None)
        path = folder_paths.get_full_path("vae_approx", found) if found else None
        if path is not None:
            taesd = TAESD(None, path, latent_channels=latent_format.latent_channels)
            return TAESDPreviewerImpl(taesd.to(device or "cpu"))
    # Auto, Latent2RGB, or TAESD without its decoder file: the linear approximation.
    factors = getattr(latent_format, "latent_rgb_factors", None)
    if factors is None:
        return None
    return Latent2RGBPreviewer(factors, getattr(latent_format, "latent_rgb_factors_bias", None),
                               getattr(latent_format, "latent_rgb_factors_reshape", None))


def prepare_callback(model=None, steps: int = 0, x0_output_dict=None):
    """A sampler callback ``(step, x0, x, total_steps)``: progress, preview, last x0."""
    from opencomfy.compat.comfy.utils import ProgressBar

    latent_format = None
    inner = getattr(model, "model", None)
    if inner is not None:
        latent_format = getattr(inner, "latent_format", None)
    previewer = get_previewer(getattr(model, "load_device", None), latent_format)
    bar = ProgressBar(steps)

    def callback(step, x0, x, total_steps):
        if x0_output_dict is not None:
            x0_output_dict["x0"] = x0
        preview = previewer.decode_latent_to_preview_image("JPEG", x0) if previewer is not None else None
        bar.update_absolute(step + 1, total_steps, preview)

    return callback
