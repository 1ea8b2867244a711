"""ComfyUI's ``comfy`` package, as far as custom nodes without a diffusion model need it."""
