"""A pack that uses ComfyUI's module surface the way popular packs do: at import time
(placeholder subclasses, data attributes, comfy_extras helpers) and inside its nodes (upscaling
and tiling with progress, latent formats and previews, model sampling, ops, execution helpers)."""

import comfy.k_diffusion.utils
import comfy.ldm.lightricks.vae.causal_video_autoencoder as ltx_vae
import comfy.ldm.wan.vae
import comfy.latent_formats
import comfy.ldm.modules.attention
import comfy.lora
import comfy.model_management
import comfy.model_sampling
import comfy.ops
import comfy.utils
import execution
import latent_preview
import torch
from comfy.model_base import ModelType
from comfy_extras.nodes_clip_sdxl import CLIPTextEncodeSDXL  # noqa: F401 (real or placeholder)
from comfy_extras.nodes_custom_sampler import Noise_RandomNoise
from comfy_extras.nodes_lt import LTXVAddGuide, get_noise_mask
from comfy_extras.nodes_mask import composite

# Import-time uses that broke packs before: a data attribute iterated, placeholder subclasses,
# an enum member compared.
IMAGE_EXTENSIONS = sorted(ext for ext in comfy.k_diffusion.utils.FolderOfImages.IMG_EXTENSIONS)
FLOW = ModelType.FLOW


class PackAttention(comfy.ldm.modules.attention.CrossAttention):
    pass


class PackGuide(LTXVAddGuide):
    pass


class PackDecoder(ltx_vae.Decoder):
    def extra(self):
        return "mine"


class SurfaceUpscale:
    """common_upscale to twice the size, then tiled_scale with a ProgressBar per tile."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",), "tile": ("INT", {"default": 8, "min": 4, "max": 64})}}

    RETURN_TYPES = ("IMAGE", "INT")
    FUNCTION = "run"
    CATEGORY = "surface"

    def run(self, image, tile):
        samples = image.movedim(-1, 1)
        doubled = comfy.utils.common_upscale(samples, samples.shape[3] * 2, samples.shape[2] * 2, "bilinear", "disabled")
        steps = comfy.utils.get_tiled_scale_steps(doubled.shape[3], doubled.shape[2], tile, tile, 2)
        bar = comfy.utils.ProgressBar(steps)
        out = comfy.utils.tiled_scale(doubled, lambda t: t * 0.5, tile_x=tile, tile_y=tile, overlap=2,
                                      upscale_amount=1, out_channels=samples.shape[1], pbar=bar)
        return (out.movedim(1, -1), steps)


class SurfaceLatentPreview:
    """Reads SDXL's preview factors and sends a Latent2RGB preview of a latent."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"samples": ("LATENT",)}}

    RETURN_TYPES = ("STRING",)
    FUNCTION = "run"
    CATEGORY = "surface"

    def run(self, samples):
        fmt = comfy.latent_formats.SDXL()
        previewer = latent_preview.Latent2RGBPreviewer(fmt.latent_rgb_factors, fmt.latent_rgb_factors_bias)
        bar = comfy.utils.ProgressBar(1)
        bar.update_absolute(1, 1, previewer.decode_latent_to_preview_image("JPEG", samples["samples"]))
        first = fmt.latent_rgb_factors[0]
        return (f"{fmt.scale_factor} {first} {fmt.taesd_decoder_name} {len(comfy.latent_formats.LTXV().latent_rgb_factors)}",)


class SurfaceModelBits:
    """Model sampling, ops layers, casts, LoRA key loading and comfy_extras helpers."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"shift": ("FLOAT", {"default": 3.0})}}

    RETURN_TYPES = ("STRING",)
    FUNCTION = "run"
    CATEGORY = "surface"

    def run(self, shift):
        class Flow(comfy.model_sampling.ModelSamplingDiscreteFlow, comfy.model_sampling.CONST):
            pass

        sampling = Flow(shift=shift)
        linear = comfy.ops.manual_cast.Linear(2, 2, bias=False)
        linear.weight = torch.nn.Parameter(torch.eye(2, dtype=torch.bfloat16), requires_grad=False)
        y = linear(torch.ones(1, 2))
        cast = comfy.model_management.cast_to(torch.ones(2), torch.float16, "cpu")
        lora = {"lora_unet_x.lora_up.weight": torch.ones(2, 1), "lora_unet_x.lora_down.weight": torch.ones(1, 2)}
        patches = comfy.lora.load_lora(lora, {"lora_unet_x": "diffusion_model.x.weight"})
        mask = get_noise_mask({"samples": torch.zeros(1, 4, 3, 2, 2)})
        dest = torch.zeros(1, 3, 4, 4)
        composite(dest, torch.ones(1, 3, 2, 2), 1, 1)
        noise = Noise_RandomNoise(7).generate_noise({"samples": torch.zeros(1, 4, 2, 2)})
        parts = [f"{sampling.percent_to_sigma(0.5):.2f}", str(y.dtype), str(cast.dtype),
                 patches["diffusion_model.x.weight"][0], str(tuple(mask.shape)), str(float(dest.sum())),
                 str(tuple(noise.shape)), execution.format_value(FLOW), IMAGE_EXTENSIONS[0],
                 execution.full_type_name(PackAttention)]
        return (" ".join(parts),)


class SurfacePlaceholderCall:
    """Uses a ComfyUI name opencomfy only has as a placeholder: the node fails, naming it."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"which": (["attention", "wan_conv", "subclass"],)}}

    RETURN_TYPES = ("STRING",)
    FUNCTION = "run"
    CATEGORY = "surface"

    def run(self, which):
        if which == "attention":
            comfy.ldm.modules.attention.optimized_attention(None, None, None, 1)
        elif which == "wan_conv":
            comfy.ldm.wan.vae.CausalConv3d(4, 4, 3)
        else:
            PackDecoder()
        return ("unreachable",)


NODE_CLASS_MAPPINGS = {
    "SurfaceUpscale": SurfaceUpscale,
    "SurfaceLatentPreview": SurfaceLatentPreview,
    "SurfaceModelBits": SurfaceModelBits,
    "SurfacePlaceholderCall": SurfacePlaceholderCall,
}
