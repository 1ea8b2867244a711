"""MODEL patches inside the UNet: block and attention patches (FreeU, PAG, attention scaling,
extra downscaling). See :mod:`opencomfy.diffusion.unet_patches` for how ComfyUI's block names
map onto our diffusers UNet."""

from __future__ import annotations

import torch


def fourier_filter(x: torch.Tensor, threshold: int, scale: float) -> torch.Tensor:
    """``x`` with its lowest spatial frequencies (a ``2 threshold`` square) scaled by ``scale``."""
    freq = torch.fft.fftshift(torch.fft.fftn(x.float(), dim=(-2, -1)), dim=(-2, -1))
    height, width = freq.shape[-2:]
    mask = torch.ones(freq.shape, device=x.device)
    cy, cx = height // 2, width // 2
    mask[..., cy - threshold:cy + threshold, cx - threshold:cx + threshold] = scale
    out = torch.fft.ifftn(torch.fft.ifftshift(freq * mask, dim=(-2, -1)), dim=(-2, -1)).real
    return out.to(x.dtype)


class FreeU:
    """FreeU (Si et al. 2023): in the decoder, amplify the backbone features (``b``) and damp the
    skip connections' low frequencies (``s``), at the two deepest resolutions."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MODEL",),
            "b1": ("FLOAT", {"default": 1.1, "min": 0.0, "max": 10.0, "step": 0.01}),
            "b2": ("FLOAT", {"default": 1.2, "min": 0.0, "max": 10.0, "step": 0.01}),
            "s1": ("FLOAT", {"default": 0.9, "min": 0.0, "max": 10.0, "step": 0.01}),
            "s2": ("FLOAT", {"default": 0.2, "min": 0.0, "max": 10.0, "step": 0.01}),
        }}

    RETURN_TYPES = ("MODEL",)
    FUNCTION = "patch"
    CATEGORY = "model_patches/unet"

    @staticmethod
    def _scales(model, b1, b2, s1, s2) -> dict:
        channels = model.model.model_config.unet_config["model_channels"]
        # Keyed by the backbone's channel count: 4x base channels is the deepest decoder level.
        return {channels * 4: (b1, s1), channels * 2: (b2, s2)}

    @staticmethod
    def backbone_factor(h: torch.Tensor, b: float) -> torch.Tensor | float:
        return b

    def patch(self, model, b1, b2, s1, s2):
        scales = self._scales(model, b1, b2, s1, s2)
        factor = self.backbone_factor

        def output_block_patch(h, hsp, transformer_options):
            scale = scales.get(int(h.shape[1]))
            if scale is not None:
                half = h.shape[1] // 2
                h = h.clone()
                h[:, :half] = h[:, :half] * factor(h, scale[0])
                hsp = fourier_filter(hsp, threshold=1, scale=scale[1])
            return h, hsp

        m = model.clone()
        m.set_model_output_block_patch(output_block_patch)
        return (m,)


class FreeU_V2(FreeU):
    """FreeU v2: the backbone amplification follows each position's normalised mean activation."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MODEL",),
            "b1": ("FLOAT", {"default": 1.3, "min": 0.0, "max": 10.0, "step": 0.01}),
            "b2": ("FLOAT", {"default": 1.4, "min": 0.0, "max": 10.0, "step": 0.01}),
            "s1": ("FLOAT", {"default": 0.9, "min": 0.0, "max": 10.0, "step": 0.01}),
            "s2": ("FLOAT", {"default": 0.2, "min": 0.0, "max": 10.0, "step": 0.01}),
        }}

    @staticmethod
    def backbone_factor(h: torch.Tensor, b: float) -> torch.Tensor:
        mean = h.mean(1, keepdim=True)
        flat = mean.reshape(mean.shape[0], -1)
        low = flat.min(dim=-1).values.reshape(-1, 1, 1, 1)
        high = flat.max(dim=-1).values.reshape(-1, 1, 1, 1)
        return (b - 1) * ((mean - low) / (high - low)) + 1


class PerturbedAttentionGuidance:
    """Perturbed-Attention Guidance (Ahn et al. 2024): also guide away from a prediction whose
    middle block's self-attention is replaced by the identity (each token attends to itself)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL", {}),
                             "scale": ("FLOAT", {"default": 3.0, "min": 0.0, "max": 100.0, "step": 0.01,
                                                 "round": 0.01})}}

    RETURN_TYPES = ("MODEL",)
    FUNCTION = "patch"
    CATEGORY = "model_patches/unet"

    def patch(self, model, scale):
        from opencomfy.diffusion.guiders import calc_cond_batch
        from opencomfy.diffusion.model_patcher import set_model_options_patch_replace

        def identity_attention(q, k, v, extra_options, mask=None):
            return v

        def post_cfg(args):
            if scale == 0:
                return args["denoised"]
            options = set_model_options_patch_replace(args["model_options"], identity_attention,
                                                      "attn1", "middle", 0)
            (perturbed,) = calc_cond_batch(args["model"], [args["cond"]], args["input"], args["sigma"], options)
            return args["denoised"] + (args["cond_denoised"] - perturbed) * scale

        m = model.clone()
        m.set_model_sampler_post_cfg_function(post_cfg)
        return (m,)


def _attention_multiply(model, kind: str, q: float, k: float, v: float, out: float):
    """A clone whose ``kind`` attention projections are scaled by weight patches."""
    from opencomfy.diffusion.weight_patches import COMFY_PREFIX, key_map

    factors = {"to_q": q, "to_k": k, "to_v": v, "to_out.0": out}
    patches = {}
    for name in key_map(model.model.diffusion_model):
        if name.startswith(COMFY_PREFIX) or f".{kind}." not in name:
            continue
        for proj, factor in factors.items():
            if f".{kind}.{proj}." in name and factor != 1.0:
                patches[name] = (factor, name)
    m = model.clone()
    state = dict(model.model.diffusion_model.state_dict())
    grouped: dict[float, dict] = {}
    for name, (factor, _) in patches.items():
        grouped.setdefault(factor, {})[name] = state[name]
    for factor, group in grouped.items():
        # w * factor == w * 0 + factor * w: a "diff" patch of the weight itself with strength_model 0.
        m.add_patches(group, factor, 0.0)
    return (m,)


class UNetSelfAttentionMultiply:
    """Scale the UNet's self-attention query, key, value and output projections."""

    @classmethod
    def INPUT_TYPES(cls):
        spec = ("FLOAT", {"default": 1.0, "min": 0.0, "max": 10.0, "step": 0.01})
        return {"required": {"model": ("MODEL", {}), "q": spec, "k": spec, "v": spec, "out": spec}}

    RETURN_TYPES = ("MODEL",)
    FUNCTION = "patch"
    CATEGORY = "_for_testing/attention_experiments"
    EXPERIMENTAL = True
    KIND = "attn1"

    def patch(self, model, q, k, v, out):
        return _attention_multiply(model, self.KIND, q, k, v, out)


class UNetCrossAttentionMultiply(UNetSelfAttentionMultiply):
    """Scale the UNet's cross-attention query, key, value and output projections."""

    KIND = "attn2"


class PatchModelAddDownscale:
    """Kohya's Deep Shrink: downscale the features after one input block while the sigma is in
    a range, upscaling back where the decoder meets the skip connections."""

    METHODS = ["bicubic", "nearest-exact", "bilinear", "area", "bislerp"]

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MODEL", {}),
            "block_number": ("INT", {"default": 3, "min": 1, "max": 32, "step": 1}),
            "downscale_factor": ("FLOAT", {"default": 2.0, "min": 0.1, "max": 9.0, "step": 0.001}),
            "start_percent": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.001}),
            "end_percent": ("FLOAT", {"default": 0.35, "min": 0.0, "max": 1.0, "step": 0.001}),
            "downscale_after_skip": ("BOOLEAN", {"default": True}),
            "downscale_method": ("COMBO", {"multiselect": False, "options": list(cls.METHODS)}),
            "upscale_method": ("COMBO", {"multiselect": False, "options": list(cls.METHODS)}),
        }}

    RETURN_TYPES = ("MODEL",)
    FUNCTION = "patch"
    CATEGORY = "model_patches/unet"

    def patch(self, model, block_number, downscale_factor, start_percent, end_percent,
              downscale_after_skip, downscale_method, upscale_method):
        from opencomfy.nodes.image_scaling import common_upscale

        sampling = model.get_model_object("model_sampling")
        sigma_start = sampling.percent_to_sigma(start_percent)
        sigma_end = sampling.percent_to_sigma(end_percent)

        def input_block_patch(h, transformer_options):
            if transformer_options["block"][1] == block_number:
                sigma = float(transformer_options["sigmas"].reshape(-1)[0])
                if sigma_end <= sigma <= sigma_start:
                    h = common_upscale(h, round(h.shape[-1] * (1.0 / downscale_factor)),
                                       round(h.shape[-2] * (1.0 / downscale_factor)), downscale_method, "disabled")
            return h

        def output_block_patch(h, hsp, transformer_options):
            if h.shape[2] != hsp.shape[2]:
                h = common_upscale(h, hsp.shape[-1], hsp.shape[-2], upscale_method, "disabled")
            return h, hsp

        m = model.clone()
        if downscale_after_skip:
            m.set_model_input_block_patch_after_skip(input_block_patch)
        else:
            m.set_model_input_block_patch(input_block_patch)
        m.set_model_output_block_patch(output_block_patch)
        return (m,)



NODES = [
    ("FreeU", FreeU, "FreeU", "comfy_extras.nodes_freelunch"),
    ("FreeU_V2", FreeU_V2, "FreeU_V2", "comfy_extras.nodes_freelunch"),
    ("PerturbedAttentionGuidance", PerturbedAttentionGuidance, None, "comfy_extras.nodes_pag"),
    ("UNetSelfAttentionMultiply", UNetSelfAttentionMultiply, None, "comfy_extras.nodes_attention_multiply"),
    ("UNetCrossAttentionMultiply", UNetCrossAttentionMultiply, None, "comfy_extras.nodes_attention_multiply"),
    ("PatchModelAddDownscale", PatchModelAddDownscale, "PatchModelAddDownscale (Kohya Deep Shrink)",
     "comfy_extras.nodes_model_downscale"),
]
