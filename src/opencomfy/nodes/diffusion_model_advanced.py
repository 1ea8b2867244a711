"""ComfyUI's ``comfy_extras.nodes_model_advanced`` nodes that apply to SD 1.x/2.x/XL models."""

from __future__ import annotations


class ModelSamplingDiscrete:
    """Override what the UNet predicts (noise or v) and optionally rescale to zero terminal SNR."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MODEL",),
            "sampling": (["eps", "v_prediction", "lcm", "x0", "img_to_img"],),
            "zsnr": ("BOOLEAN", {"default": False}),
        }}

    RETURN_TYPES = ("MODEL",)
    FUNCTION = "patch"
    CATEGORY = "advanced/model"

    def patch(self, model, sampling, zsnr):
        kinds = {"eps": "epsilon", "v_prediction": "v_prediction"}
        if sampling not in kinds:
            raise ValueError(f"ModelSamplingDiscrete: sampling {sampling!r} is not supported yet "
                             "(eps and v_prediction are)")
        patched = model.clone()
        patched.schedule = model.schedule.with_prediction(kinds[sampling], zsnr=zsnr)
        return (patched,)


NODES = [
    ("ModelSamplingDiscrete", ModelSamplingDiscrete, "ModelSamplingDiscrete",
     "comfy_extras.nodes_model_advanced"),
]
