"""Fixtures for the node tests: ComfyUI's folder layout in a temporary directory."""

from __future__ import annotations

import pytest
import torch

from opencomfy.compat import folder_paths
from opencomfy.compat.comfy import cli_args

torch.set_num_threads(1)


@pytest.fixture
def comfy_dirs(tmp_path):
    """folder_paths configured on ``tmp_path`` (input/, output/, temp/, models/ ...).

    Yields the base directory; the input and output folders exist. Metadata saving is on.
    """
    folder_paths.configure(base_directory=tmp_path)
    for name in ("input", "output"):
        (tmp_path / name).mkdir()
    previous = getattr(cli_args.args, "disable_metadata", False)
    cli_args.args.disable_metadata = False
    yield tmp_path
    cli_args.args.disable_metadata = previous
    folder_paths.forget_save_counters()


def run_node(cls, **inputs):
    """Instantiate a V1 node class and call its FUNCTION, as the engine does."""
    node = cls()
    return getattr(node, cls.FUNCTION)(**inputs)
