# An installer script: ComfyUI never runs it, neither may opencomfy.
from pathlib import Path

Path(__file__).with_name("INSTALL_RAN").write_text("install.py ran")
