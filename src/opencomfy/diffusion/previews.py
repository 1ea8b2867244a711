"""Latent previews and step callbacks for the sampling nodes (ComfyUI's ``latent_preview``).

This is the one preview implementation: the core sampling nodes use it directly, and custom
nodes get it under ComfyUI's names from :mod:`opencomfy.compat.latent_preview`.

:func:`prepare_callback` gives a ``callback(step, x0, x, total_steps)`` that reports the running
node's progress, keeps the last prediction in ``x0_output_dict["x0"]`` (SamplerCustom's
``denoised_output``) and, when previews are on, turns the predicted latent into a small image
sent with the progress (a binary websocket frame, encoded and scaled to ``--preview-size`` by
:func:`opencomfy.engine.progress.report_progress`).

The method comes from the prompt's ``extra_data["preview_method"]`` (the frontend's setting;
``"default"`` or absent defers to the server), else from :func:`set_preview_method`, else from
``--preview-method``: ``latent2rgb`` multiplies each latent pixel by the family's RGB factor
matrix (cheap, blurry), ``taesd`` decodes with the family's tiny TAESD decoder from
``models/vae_approx`` (:mod:`opencomfy.diffusion.taesd`, read once per file), ``auto`` is
``latent2rgb`` as in current ComfyUI (TAESD only when chosen by name), ``none`` sends none.
A preview never fails a prompt: a missing or unusable decoder falls back to ``latent2rgb``, a
previewer that raises is switched off for the rest of the run, and slow previews are thinned
out to a share of the sampling time.
"""

from __future__ import annotations

import logging
import time
from typing import Callable

import torch

from opencomfy.compat.comfy.cli_args import LatentPreviewMethod
from opencomfy.diffusion.latent_formats import latent_format_of

__all__ = ["LatentPreviewMethod", "LatentPreviewer", "Latent2RGBPreviewer", "TAESDPreviewerImpl",
           "get_previewer", "prepare_callback", "preview_method", "preview_size", "preview_to_image",
           "set_preview_method"]

log = logging.getLogger(__name__)

PREVIEW_FORMAT = "JPEG"
#: previews may take at most this share of a sampling run's time; steps in between go without
PREVIEW_TIME_SHARE = 0.25

_override: LatentPreviewMethod | None = None


def preview_size() -> int:
    """``--preview-size``: the longest side, in pixels, of a preview image."""
    from opencomfy.compat.comfy.cli_args import args

    return int(getattr(args, "preview_size", 512) or 512)


def _as_method(value) -> LatentPreviewMethod | None:
    if isinstance(value, LatentPreviewMethod):
        return value
    try:
        return LatentPreviewMethod(str(value).lower())
    except ValueError:
        return None


def set_preview_method(override=None) -> None:
    """Preview with ``override`` (a method or its name) instead of ``--preview-method``; None,
    ``"default"`` or an unknown name goes back to the flag (ComfyUI's ``set_preview_method``)."""
    global _override
    _override = None if override in (None, "", "default") else _as_method(override)


def server_method() -> LatentPreviewMethod:
    """The method outside any prompt's choice: :func:`set_preview_method`'s, else the flag's."""
    from opencomfy.compat.comfy.cli_args import args

    if _override is not None:
        return _override
    return _as_method(getattr(args, "preview_method", None)) or LatentPreviewMethod.NoPreviews


def preview_method() -> LatentPreviewMethod:
    """The running prompt's preview method: its ``extra_data`` choice, else the server's."""
    from opencomfy.engine.progress import current_context

    ctx = current_context()
    extra = ctx.extra_data if ctx is not None and isinstance(ctx.extra_data, dict) else {}
    choice = extra.get("preview_method")
    if choice not in (None, "", "default"):
        method = _as_method(choice)
        if method is not None:
            return method
    return server_method()


def preview_to_image(image: torch.Tensor, do_scale: bool = True):
    """``[H, W, 3]`` in -1..1 (0..1 with ``do_scale=False``) -> an RGB PIL image."""
    from PIL import Image

    image = image.detach().float().cpu()
    if not do_scale:
        image = image * 2.0 - 1.0
    pixels = ((image.clamp(-1.0, 1.0) + 1.0) * 127.5).round()
    return Image.fromarray(pixels.to(torch.uint8).numpy())


class LatentPreviewer:
    """Turns the sampler's predicted latent ``x0`` into a preview image."""

    def decode_latent_to_preview(self, x0: torch.Tensor):
        raise NotImplementedError

    def decode_latent_to_preview_image(self, preview_format: str, x0: torch.Tensor):
        """``(format, PIL image, max size)``, what ``report_progress`` takes as ``preview``."""
        image_format = preview_format if preview_format in ("JPEG", "PNG") else PREVIEW_FORMAT
        return (image_format, self.decode_latent_to_preview(x0), preview_size())


class TAESDPreviewerImpl(LatentPreviewer):
    """The first sample decoded by a TAESD decoder (anything with ``decode(latents)`` -> -1..1)."""

    def __init__(self, taesd):
        self.taesd = taesd

    def decode_latent_to_preview(self, x0: torch.Tensor):
        if x0.ndim == 5:          # video latents: the first frame
            x0 = x0[:, :, 0]
        with torch.inference_mode():
            image = self.taesd.decode(x0[:1])[0]
        return preview_to_image(image.movedim(0, -1))


class Latent2RGBPreviewer(LatentPreviewer):
    """The first sample's latent pixels mapped to RGB by a ``[channels, 3]`` matrix (+ bias)."""

    def __init__(self, latent_rgb_factors, latent_rgb_factors_bias=None, latent_rgb_factors_reshape=None):
        self.latent_rgb_factors = torch.tensor(latent_rgb_factors, dtype=torch.float32).transpose(0, 1)
        self.latent_rgb_factors_bias = (None if latent_rgb_factors_bias is None
                                        else torch.tensor(latent_rgb_factors_bias, dtype=torch.float32))
        self.latent_rgb_factors_reshape = latent_rgb_factors_reshape

    def decode_latent_to_preview(self, x0: torch.Tensor):
        if self.latent_rgb_factors_reshape is not None:
            x0 = self.latent_rgb_factors_reshape(x0)
        sample = x0[0, :, 0] if x0.ndim == 5 else x0[0]
        # One small matmul: on the CPU, so the sampler's device does no extra work.
        pixels = sample.detach().float().cpu().movedim(0, -1)
        rgb = torch.nn.functional.linear(pixels, self.latent_rgb_factors, self.latent_rgb_factors_bias)
        return preview_to_image(rgb)


def _taesd_previewer(device, latent_format) -> TAESDPreviewerImpl | None:
    from opencomfy.diffusion.taesd import find_file, load_decoder

    name = getattr(latent_format, "taesd_decoder_name", None)
    path = find_file(name) if name else None
    if path is None:
        log.warning("TAESD previews asked for, but models/vae_approx has no %s file; using latent2rgb",
                    name or "TAESD decoder for this model")
        return None
    try:
        decoder = load_decoder(path)
    except Exception as exc:  # a bad file costs the preview quality, never the prompt
        log.warning("TAESD decoder %s not usable (%s); using latent2rgb", path, exc)
        return None
    channels = getattr(latent_format, "latent_channels", decoder.latent_channels)
    if decoder.latent_channels != channels:
        log.warning("TAESD decoder %s takes %d channels, the model's latents have %d; using latent2rgb",
                    path, decoder.latent_channels, channels)
        return None
    if device is not None:
        decoder.to(device)
    return TAESDPreviewerImpl(decoder)


def get_previewer(device=None, latent_format=None, method: LatentPreviewMethod | str | None = None):
    """The previewer for latents of ``latent_format`` under ``method`` (default: the running
    prompt's), or None when previews are off or the format has no way to preview."""
    chosen = _as_method(method) if method is not None else preview_method()
    if latent_format is None or chosen in (None, LatentPreviewMethod.NoPreviews):
        return None
    previewer = None
    if chosen is LatentPreviewMethod.TAESD:
        previewer = _taesd_previewer(device, latent_format)
    factors = getattr(latent_format, "latent_rgb_factors", None)
    if previewer is None and factors is not None:
        previewer = Latent2RGBPreviewer(factors, getattr(latent_format, "latent_rgb_factors_bias", None),
                                        getattr(latent_format, "latent_rgb_factors_reshape", None))
    return previewer


class _Throttle:
    """Keeps preview work under :data:`PREVIEW_TIME_SHARE` of the run: after a preview that
    took ``c`` seconds the next waits ``c * (1 / share - 1)``; the last step always gets one."""

    def __init__(self):
        self.next_at = 0.0

    def due(self, last_step: bool) -> bool:
        return last_step or time.perf_counter() >= self.next_at

    def spent(self, started: float) -> None:
        now = time.perf_counter()
        self.next_at = now + (now - started) * (1.0 / PREVIEW_TIME_SHARE - 1.0)


def _report_to_engine(value: int, total: int, preview=None) -> None:
    from opencomfy.engine.progress import report_progress

    report_progress(value, total, preview=preview)


def prepare_callback(model, steps: int, x0_output_dict: dict | None = None, *,
                     report: Callable[..., None] | None = None):
    """A ``callback(step, x0, x, total_steps)`` for a sampler run on ``model``. ``report(value,
    total, preview)`` receives each step's progress (default: the running node's progress)."""
    from opencomfy.engine.progress import current_context

    previewer = None
    # Outside a prompt nobody would see the previews; without a model there is nothing to read.
    if current_context() is not None and model is not None:
        device = getattr(model, "load_device", None)
        if device is None:
            from opencomfy.diffusion.memory import compute_device

            device = compute_device()
        previewer = get_previewer(device, latent_format_of(model))
    send = report or _report_to_engine
    throttle = _Throttle()

    def callback(step: int, x0: torch.Tensor, x: torch.Tensor, total_steps: int) -> None:
        nonlocal previewer
        if x0_output_dict is not None:
            x0_output_dict["x0"] = x0
        total = total_steps or steps
        preview, started = None, time.perf_counter()
        if previewer is not None and throttle.due(step + 1 >= total):
            try:
                preview = previewer.decode_latent_to_preview_image(PREVIEW_FORMAT, x0)
            except Exception:  # previews are a courtesy: sampling goes on without them
                log.exception("latent preview failed; no more previews for this run")
                previewer = None
        send(step + 1, total, preview)
        if preview is not None:
            throttle.spent(started)

    return callback
