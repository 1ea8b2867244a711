"""ComfyUI's ``comfy_api.torch_helpers``: torch.compile for a MODEL's modules."""

from opencomfy.compat.comfy_api.torch_helpers.torch_compile import set_torch_compile_wrapper

__all__ = ["set_torch_compile_wrapper"]
