"""ComfyUI's ``comfy.taesd`` package: the tiny autoencoders used for previews."""
