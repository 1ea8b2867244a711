"""ComfyUI's ``comfy.options``: whether ``comfy.cli_args`` parses the real command line.

opencomfy's ``args`` always reflect the server's configuration, so the switch is kept only for
packs that flip it before importing ``comfy.cli_args``.
"""

args_parsing = False


def enable_args_parsing(enable: bool = True) -> None:
    global args_parsing
    args_parsing = enable
