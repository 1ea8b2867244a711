"""ComfyUI's ``comfy_api`` package: the versioned custom-node API."""
