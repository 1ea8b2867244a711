"""ComfyUI's ``comfy_execution`` package: the engine's public pieces under ComfyUI's names."""
