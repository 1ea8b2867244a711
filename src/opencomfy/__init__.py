"""opencomfy: a ComfyUI-compatible server you run yourself."""

__version__ = "0.1.0"
