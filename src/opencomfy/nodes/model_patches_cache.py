"""MODEL patches that make sampling faster: step caching (EasyCache, LazyCache, see
:mod:`opencomfy.diffusion.step_cache`) and torch.compile (TorchCompileModel, see
:mod:`opencomfy.diffusion.torch_compile`)."""

from __future__ import annotations

from opencomfy.diffusion import available


class EasyCache:
    """Skip diffusion model calls while their output is predicted to change little."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MODEL", {}),
            "reuse_threshold": ("FLOAT", {"default": 0.2, "min": 0.0, "max": 3.0, "step": 0.01}),
            "start_percent": ("FLOAT", {"default": 0.15, "min": 0.0, "max": 1.0, "step": 0.01}),
            "end_percent": ("FLOAT", {"default": 0.95, "min": 0.0, "max": 1.0, "step": 0.01}),
            "verbose": ("BOOLEAN", {"default": False}),
        }}

    RETURN_TYPES = ("MODEL",)
    FUNCTION = "patch"
    CATEGORY = "advanced/debug/model"
    EXPERIMENTAL = True
    LAZY = False

    def patch(self, model, reuse_threshold, start_percent, end_percent, verbose):
        from opencomfy.diffusion.step_cache import LazyStepCache, StepCache, with_step_cache

        holder = LazyStepCache if self.LAZY else StepCache
        cache = holder(float(reuse_threshold), float(start_percent), float(end_percent), verbose=bool(verbose))
        return (with_step_cache(model, cache, lazy=self.LAZY),)


class LazyCache(EasyCache):
    """Skip whole guided steps while their prediction is estimated to change little."""

    LAZY = True


class TorchCompileModel:
    """Compile the diffusion model with torch.compile for this MODEL's runs."""

    @classmethod
    def INPUT_TYPES(cls):
        from opencomfy.diffusion.torch_compile import BACKENDS

        return {"required": {"model": ("MODEL", {}),
                             "backend": ("COMBO", {"multiselect": False, "options": list(BACKENDS)})}}

    RETURN_TYPES = ("MODEL",)
    FUNCTION = "patch"
    CATEGORY = "_for_testing"
    EXPERIMENTAL = True

    def patch(self, model, backend):
        from opencomfy.diffusion.torch_compile import compile_model

        return (compile_model(model, str(backend)),)


# Empty without the optional diffusion extra (the methods need torch and diffusers).
NODES = [] if not available() else [
    ("EasyCache", EasyCache, "EasyCache", "comfy_extras.nodes_easycache"),
    ("LazyCache", LazyCache, "LazyCache", "comfy_extras.nodes_easycache"),
    ("TorchCompileModel", TorchCompileModel, None, "comfy_extras.nodes_torch_compile"),
]
