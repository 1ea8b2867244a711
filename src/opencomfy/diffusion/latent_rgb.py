"""The latent format a preview uses for a MODEL: its RGB factors and its TAESD decoder.

ComfyUI's previews read ``model.model.latent_format`` (a ``comfy.latent_formats`` object): the
channel count, the ``[channels, 3]`` matrix and bias that map a latent pixel to an approximate
colour (a linear fit published for each family), and the prefix of the family's TAESD decoder
file in ``models/vae_approx``. Those published numbers live once, in
:mod:`opencomfy.compat.comfy.latent_formats`; this module maps our model families onto them.
"""

from __future__ import annotations

from opencomfy.compat.comfy import latent_formats

#: model family (``DiffusionModel.family``) -> its latent format; SD 2.x shares SD 1.x's VAE.
FORMATS = {
    "sd1": latent_formats.SD15, "sd2": latent_formats.SD15, "sdxl": latent_formats.SDXL,
    "sdxl_refiner": latent_formats.SDXL, "sd_x4": latent_formats.SD_X4, "sd3": latent_formats.SD3,
    "flux": latent_formats.Flux,
}


def family_format(family: str | None):
    """A fresh latent format object of ``family`` (SD 1.x for an unknown one)."""
    return FORMATS.get(str(family), latent_formats.SD15)()


def _is_bare_scale(found) -> bool:
    """Whether ``found`` is the loaders' plain scale-only format, which names no TAESD decoder
    and no RGB bias: the family's published format says more about the same latents."""
    try:
        from opencomfy.diffusion.base_model import LatentFormat as ScaleOnly
    except ImportError:      # models that carry full formats need no completing
        return False
    return type(found) is ScaleOnly


def latent_format_of(model):
    """The latent format of a MODEL: its own (or object-patched) ``latent_format``, as ComfyUI's
    ``model.model.latent_format``; the family's when the model carries none or only a scale."""
    found = None
    getter = getattr(model, "get_model_object", None)
    if callable(getter):
        try:
            found = getter("latent_format")
        except AttributeError:
            found = None
    if found is None:
        for holder in (getattr(model, "model", None), model):
            found = getattr(holder, "latent_format", None)
            if found is not None:
                break
    if found is None or _is_bare_scale(found):
        return family_format(getattr(model, "family", None))
    return found
