"""MODEL patches that change classifier-free guidance (ComfyUI's CFG-level patch nodes).

Each node clones the MODEL and adds a sampler function to the clone's ``model_options``:
``sampler_cfg_function`` (replaces the combination; works on noise predictions ``x - x0``),
``sampler_pre_cfg_function`` (edits the cond/uncond predictions before it) or
``sampler_post_cfg_function`` (edits the guided denoised result). The guider
(:mod:`opencomfy.diffusion.guiders`) calls them with ComfyUI's argument dicts.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

_MODEL_ADVANCED = "comfy_extras.nodes_model_advanced"


def _clone_with(model, kind: str, fn, **options):
    m = model.clone()
    getattr(m, f"set_model_sampler_{kind}_function")(fn, **options)
    return (m,)


class _Patch:
    RETURN_TYPES = ("MODEL",)
    FUNCTION = "patch"


def rescale_cfg(args: dict, multiplier: float) -> torch.Tensor:
    """CFG whose result is rescaled to the positive prediction's spread (Lin et al. 2023, sec. 3.4),
    computed on v predictions; returns a noise prediction (a ``sampler_cfg_function``)."""
    cond, uncond, scale = args["cond"], args["uncond"], args["cond_scale"]
    x_orig = args["input"]
    sigma = args["sigma"].to(cond.dtype)
    sigma = sigma.reshape(sigma.shape[:1] + (1,) * (cond.ndim - 1))
    x = x_orig / (sigma * sigma + 1.0)
    to_v = (sigma ** 2 + 1.0) ** 0.5 / sigma
    v_cond = (x - (x_orig - cond)) * to_v
    v_uncond = (x - (x_orig - uncond)) * to_v
    v_cfg = v_uncond + scale * (v_cond - v_uncond)
    dims = tuple(range(1, cond.ndim))
    rescaled = v_cfg * (torch.std(v_cond, dim=dims, keepdim=True) / torch.std(v_cfg, dim=dims, keepdim=True))
    v_final = multiplier * rescaled + (1.0 - multiplier) * v_cfg
    return x_orig - (x - v_final * sigma / (sigma * sigma + 1.0) ** 0.5)


class RescaleCFG(_Patch):
    """Rescale the guided prediction's standard deviation towards the positive prediction's."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",),
                             "multiplier": ("FLOAT", {"default": 0.7, "min": 0.0, "max": 1.0, "step": 0.01})}}

    CATEGORY = "advanced/model"

    def patch(self, model, multiplier):
        return _clone_with(model, "cfg", lambda args: rescale_cfg(args, multiplier))


class PerpNeg(_Patch):
    """Perp-Neg as a MODEL patch: guide away only from the part of the negative prompt that is
    perpendicular to the positive one (superseded by the PerpNegGuider node)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL", {}), "empty_conditioning": ("CONDITIONING", {}),
                             "neg_scale": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 100.0, "step": 0.01})}}

    CATEGORY = "_for_testing"
    DEPRECATED = True
    EXPERIMENTAL = True

    def patch(self, model, empty_conditioning, neg_scale):
        from opencomfy.diffusion import conditioning as conds
        from opencomfy.diffusion.guiders import calc_cond_batch, perp_neg

        resolved: dict[tuple, list] = {}

        def cfg_function(args):
            patched = args["model"]
            x = args["input"]
            key = tuple(x.shape[-2:])
            if key not in resolved:
                resolved[key] = conds.resolve(empty_conditioning, schedule=patched.schedule,
                                              height=key[0], width=key[1], needs_pooled=patched.needs_pooled)
            (empty,) = calc_cond_batch(patched, [resolved[key]], x, args["sigma"], args["model_options"])
            guided = perp_neg(args["cond_denoised"], args["uncond_denoised"], empty, neg_scale,
                              args["cond_scale"])
            return x - guided
        return _clone_with(model, "cfg", cfg_function)


def project(v0: torch.Tensor, v1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(the part of ``v0`` along ``v1``, the part orthogonal to it), per sample."""
    dims = list(range(1, v0.ndim))
    v1 = v1 / v1.flatten(1).norm(dim=1).clamp_min(1e-12).reshape([-1] + [1] * len(dims))
    parallel = (v0 * v1).sum(dim=dims, keepdim=True) * v1
    return parallel, v0 - parallel


class APG(_Patch):
    """Adaptive Projected Guidance (Sadat et al. 2024): damp the guidance along the positive
    prediction (``eta``), cap its norm and optionally smooth it over steps with momentum."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MODEL", {}),
            "eta": ("FLOAT", {"default": 1.0, "min": -10.0, "max": 10.0, "step": 0.01,
                              "tooltip": "Weight of the guidance along the positive prediction; 1 keeps it."}),
            "norm_threshold": ("FLOAT", {"default": 5.0, "min": 0.0, "max": 50.0, "step": 0.1,
                                         "tooltip": "Cap on the guidance's norm; 0 turns the cap off."}),
            "momentum": ("FLOAT", {"default": 0.0, "min": -5.0, "max": 1.0, "step": 0.01,
                                   "tooltip": "Weight of the previous steps' guidance; 0 turns it off."}),
        }}

    CATEGORY = "sampling/custom_sampling"

    def patch(self, model, eta, norm_threshold, momentum):
        state: dict = {"average": None, "sigma": None}

        def pre_cfg(args):
            out = args["conds_out"]
            if len(out) == 1:
                return out
            cond, uncond, scale = out[0], out[1], args["cond_scale"]
            sigma = float(args["sigma"].reshape(-1)[0])
            if state["sigma"] is not None and sigma > state["sigma"]:
                state["average"] = None       # a new run: forget the last one's guidance
            state["sigma"] = sigma
            guidance = cond - uncond
            if momentum != 0:
                average = state["average"]
                guidance = guidance if average is None else momentum * average + guidance
                state["average"] = guidance
            if norm_threshold > 0:
                norm = guidance.norm(p=2, dim=list(range(1, guidance.ndim)), keepdim=True)
                guidance = guidance * torch.minimum(torch.ones_like(norm), norm_threshold / norm)
            parallel, orthogonal = project(guidance, cond)
            # Chosen so that plain CFG on the result gives cond + scale * modified guidance.
            modified = uncond + orthogonal + eta * parallel + (cond - uncond) / scale
            return [modified, uncond, *out[2:]]
        return _clone_with(model, "pre_cfg", pre_cfg)


class CFGNorm(_Patch):
    """Scale the guided prediction down where its channel norm exceeds the positive prediction's."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL", {}),
                             "strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 100.0, "step": 0.01})}}

    RETURN_NAMES = ("patched_model",)
    CATEGORY = "advanced/guidance"
    EXPERIMENTAL = True

    def patch(self, model, strength):
        def post_cfg(args):
            guided = args["denoised"]
            ratio = torch.norm(args["cond_denoised"], dim=1, keepdim=True) / \
                (torch.norm(guided, dim=1, keepdim=True) + 1e-8)
            return guided * ratio.clamp(min=0.0, max=1.0) * strength
        return _clone_with(model, "post_cfg", post_cfg)


def optimized_scale(positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
    """Per sample, the scale of ``negative`` closest to ``positive`` (least squares)."""
    p = positive.reshape(positive.shape[0], -1)
    n = negative.reshape(negative.shape[0], -1)
    scale = (p * n).sum(dim=1, keepdim=True) / ((n ** 2).sum(dim=1, keepdim=True) + 1e-8)
    return scale.reshape([positive.shape[0]] + [1] * (positive.ndim - 1))


class CFGZeroStar(_Patch):
    """CFG-Zero* (Fan et al. 2025): scale the negative prediction by its best fit to the positive."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL", {})}}

    RETURN_NAMES = ("patched_model",)
    CATEGORY = "advanced/guidance"

    def patch(self, model):
        def post_cfg(args):
            x, scale = args["input"], args["cond_scale"]
            cond, uncond = args["cond_denoised"], args["uncond_denoised"]
            alpha = optimized_scale(x - cond, x - uncond)
            return args["denoised"] + uncond * (alpha - 1.0) + scale * uncond * (1.0 - alpha)
        return _clone_with(model, "post_cfg", post_cfg)


def tangential_damping(cond_score: torch.Tensor, uncond_score: torch.Tensor) -> torch.Tensor:
    """The negative score projected onto the first right singular vector of [uncond; cond]."""
    batch = cond_score.shape[0]
    cond_flat = cond_score.reshape(batch, 1, -1).float()
    uncond_flat = uncond_score.reshape(batch, 1, -1).float()
    _, _, vh = torch.linalg.svd(torch.cat((uncond_flat, cond_flat), dim=1), full_matrices=False)
    v1 = vh[:, 0:1, :]
    damped = (uncond_flat @ v1.transpose(-2, -1)) * v1
    return damped.reshape_as(uncond_score).to(uncond_score.dtype)


class TCFG(_Patch):
    """Tangential Damping CFG (Kwon et al. 2025): drop the part of the negative score that is
    tangential to the positive one."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL", {})}}

    RETURN_NAMES = ("patched_model",)
    CATEGORY = "advanced/guidance"

    def patch(self, model):
        def pre_cfg(args):
            x, out = args["input"], args["conds_out"]
            if len(out) <= 1 or None in args["conds"][:2]:
                return out
            damped = tangential_damping(x - out[0], x - out[1])
            return [out[0], x - damped, *out[2:]]
        return _clone_with(model, "pre_cfg", pre_cfg)


class Mahiro(_Patch):
    """Lean the guided result towards the positive prediction scaled by cfg, as far as the
    (square-root-compressed) results agree in direction with the negative's."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL", {})}}

    RETURN_NAMES = ("patched_model",)
    CATEGORY = "_for_testing"
    EXPERIMENTAL = True

    def patch(self, model):
        def post_cfg(args):
            scale = args["cond_scale"]
            leap = args["cond_denoised"] * scale
            u_leap = args["uncond_denoised"] * scale
            cfg = args["denoised"]
            merge = (leap + cfg) / 2
            norm_u = torch.sqrt(u_leap.abs()) * u_leap.sign()
            norm_m = torch.sqrt(merge.abs()) * merge.sign()
            similarity = 2 * (F.cosine_similarity(norm_u, norm_m).mean() + 1)
            return (similarity * cfg + (4 - similarity) * leap) / 4
        return _clone_with(model, "post_cfg", post_cfg)


def fourier_scale(x: torch.Tensor, scale_low: float, scale_high: float, cutoff: int) -> torch.Tensor:
    """``x`` with its centred low frequencies (a ``2 cutoff`` square) scaled by ``scale_low`` and
    the rest by ``scale_high``."""
    dtype = x.dtype
    freq = torch.fft.fftshift(torch.fft.fftn(x.float(), dim=(-2, -1)), dim=(-2, -1))
    height, width = freq.shape[-2:]
    mask = torch.full(freq.shape, float(scale_high), device=x.device)
    cy, cx = height // 2, width // 2
    # Plain slicing as ComfyUI does it (a cutoff past the centre wraps to the far end).
    mask[..., cy - cutoff:cy + cutoff, cx - cutoff:cx + cutoff] = scale_low
    out = torch.fft.ifftn(torch.fft.ifftshift(freq * mask, dim=(-2, -1)), dim=(-2, -1)).real
    return out.to(dtype)


class FreSca(_Patch):
    """Scale the guidance's low and high spatial frequencies separately (Huang et al. 2025)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MODEL", {}),
            "scale_low": ("FLOAT", {"default": 1.0, "min": 0, "max": 10, "step": 0.01,
                                    "tooltip": "Factor for the guidance's low frequencies."}),
            "scale_high": ("FLOAT", {"default": 1.25, "min": 0, "max": 10, "step": 0.01,
                                     "tooltip": "Factor for the guidance's high frequencies."}),
            "freq_cutoff": ("INT", {"default": 20, "min": 1, "max": 10000, "step": 1,
                                    "tooltip": "Half-width of the centred square counted as low frequencies."}),
        }}

    CATEGORY = "_for_testing"
    EXPERIMENTAL = True

    def patch(self, model, scale_low, scale_high, freq_cutoff):
        def pre_cfg(args):
            out = args["conds_out"]
            if len(out) < 2:
                return out
            cond, uncond = out[0], out[1]
            return [fourier_scale(cond - uncond, scale_low, scale_high, freq_cutoff) + uncond, uncond]
        return _clone_with(model, "pre_cfg", pre_cfg)


class RenormCFG(_Patch):
    """CFG capped in norm at ``renorm_cfg`` times the positive prediction's, and only while the
    timestep is below ``cfg_trunc`` (Lumina 2's guidance)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL", {}),
                             "cfg_trunc": ("FLOAT", {"default": 100, "min": 0.0, "max": 100.0, "step": 0.01}),
                             "renorm_cfg": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 100.0, "step": 0.01})}}

    CATEGORY = "advanced/model"

    def patch(self, model, cfg_trunc, renorm_cfg):
        channels = int(model.model.diffusion_model.config.in_channels)

        def cfg_function(args):
            cond, uncond = args["cond_denoised"], args["uncond_denoised"]
            scale, x = args["cond_scale"], args["input"]
            cond_main, rest = cond[:, :channels], cond[:, channels:]
            if float(args["timestep"].reshape(-1)[0]) < cfg_trunc:
                guided = uncond[:, :channels] + scale * (cond_main - uncond[:, :channels])
                if float(renorm_cfg) > 0.0:
                    dims = tuple(range(1, cond_main.ndim))
                    limit = torch.linalg.vector_norm(cond_main, dim=dims, keepdim=True) * float(renorm_cfg)
                    norm = torch.linalg.vector_norm(guided, dim=dims, keepdim=True)
                    guided = torch.where(norm >= limit, guided * (limit / norm), guided)
            else:
                guided = cond_main
            return x - torch.cat([guided, rest], dim=1)
        return _clone_with(model, "cfg", cfg_function)


class EpsilonScaling(_Patch):
    """Epsilon Scaling (Ning et al. 2023): divide the predicted noise by a factor slightly above 1
    to counter exposure bias."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL", {}),
                             "scaling_factor": ("FLOAT", {"default": 1.005, "min": 0.5, "max": 1.5,
                                                          "step": 0.001, "display": "number"})}}

    CATEGORY = "model_patches/unet"

    def patch(self, model, scaling_factor):
        def post_cfg(args):
            x = args["input"]
            return x - (x - args["denoised"]) / scaling_factor
        return _clone_with(model, "post_cfg", post_cfg)


class LatentApplyOperationCFG(_Patch):
    """Run a LATENT_OPERATION on the guidance (positive minus negative prediction) at each step."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL", {}), "operation": ("LATENT_OPERATION", {})}}

    CATEGORY = "latent/advanced/operations"
    EXPERIMENTAL = True

    def patch(self, model, operation):
        def pre_cfg(args):
            out = list(args["conds_out"])
            if len(out) == 2:
                out[0] = operation(latent=out[0] - out[1]) + out[1]
            else:
                out[0] = operation(latent=out[0])
            return out
        return _clone_with(model, "pre_cfg", pre_cfg)


class DifferentialDiffusion(_Patch):
    """Inpainting by degrees: a soft mask becomes, at each step, the region whose mask value
    exceeds how far sampling still has to go (Levin & Fried 2023)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL", {})},
                "optional": {"strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01})}}

    CATEGORY = "_for_testing"
    EXPERIMENTAL = True

    def patch(self, model, strength=1.0):
        m = model.clone()
        m.set_model_denoise_mask_function(lambda sigma, mask, extra_options:
                                          differential_mask(sigma, mask, extra_options, strength))
        return (m,)


def differential_mask(sigma, denoise_mask, extra_options: dict, strength: float = 1.0):
    """The binary mask of the step at ``sigma``: where the mask is at least the fraction of the
    run's timesteps still ahead; blended back with the soft mask when ``strength`` < 1."""
    sampling = extra_options["model"].inner_model.model_sampling
    sigmas = extra_options["sigmas"]
    sigma_to = max(float(sigmas[-1]), float(sampling.sigma_min))
    ts_from = float(sampling.timestep(torch.as_tensor(float(sigmas[0]))))
    ts_to = float(sampling.timestep(torch.as_tensor(sigma_to)))
    current = float(sampling.timestep(torch.as_tensor(float(sigma.reshape(-1)[0]))))
    threshold = (current - ts_to) / (ts_from - ts_to) if ts_from != ts_to else 0.0
    binary = (denoise_mask >= threshold).to(denoise_mask.dtype)
    if strength and strength < 1:
        return strength * binary + (1 - strength) * denoise_mask
    return binary


NODES = [
    ("RescaleCFG", RescaleCFG, "RescaleCFG", _MODEL_ADVANCED),
    ("PerpNeg", PerpNeg, "Perp-Neg (DEPRECATED by PerpNegGuider)", "comfy_extras.nodes_perpneg"),
    ("APG", APG, "Adaptive Projected Guidance", "comfy_extras.nodes_apg"),
    ("CFGNorm", CFGNorm, None, "comfy_extras.nodes_cfg"),
    ("CFGZeroStar", CFGZeroStar, None, "comfy_extras.nodes_cfg"),
    ("TCFG", TCFG, "Tangential Damping CFG", "comfy_extras.nodes_tcfg"),
    ("Mahiro", Mahiro, "Mahiro is so cute that she deserves a better guidance function!! (。・ω・。)",
     "comfy_extras.nodes_mahiro"),
    ("FreSca", FreSca, "FreSca", "comfy_extras.nodes_fresca"),
    ("RenormCFG", RenormCFG, None, "comfy_extras.nodes_lumina2"),
    ("Epsilon Scaling", EpsilonScaling, None, "comfy_extras.nodes_eps"),
    ("LatentApplyOperationCFG", LatentApplyOperationCFG, None, "comfy_extras.nodes_latent"),
    ("DifferentialDiffusion", DifferentialDiffusion, "Differential Diffusion",
     "comfy_extras.nodes_differential_diffusion"),
]
