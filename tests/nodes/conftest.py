"""Fixtures for the node tests: ComfyUI's folder layout in a temporary directory."""

from __future__ import annotations

import copy

import pytest
import torch

from opencomfy.compat import folder_paths
from opencomfy.compat.comfy import cli_args

torch.set_num_threads(1)


def folder_paths_state() -> dict:
    """Everything :func:`folder_paths.configure` and ``add_model_folder_path`` change."""
    from opencomfy.files import workspace_roots

    return {"base_directory": folder_paths.base_path, "models_directory": folder_paths.models_dir,
            "user_directory": folder_paths.user_directory, "roots": dict(folder_paths._roots),
            "per_workspace": workspace_roots.per_workspace(),
            "folders": copy.deepcopy(folder_paths.folder_names_and_paths)}


def restore_folder_paths(state: dict) -> None:
    """Put folder_paths back as :func:`folder_paths_state` found it (caches and counters are
    forgotten, as configure does), so one test's folders never leak into the next."""
    roots = state["roots"]
    folder_paths.configure(base_directory=state["base_directory"], models_directory=state["models_directory"],
                           user_directory=state["user_directory"], output_directory=roots["output"],
                           input_directory=roots["input"], temp_directory=roots["temp"],
                           per_workspace=state["per_workspace"])
    # In place: custom nodes may hold a reference to the dict.
    folder_paths.folder_names_and_paths.clear()
    folder_paths.folder_names_and_paths.update(state["folders"])


@pytest.fixture
def comfy_dirs(tmp_path):
    """folder_paths configured on ``tmp_path`` (input/, output/, temp/, models/ ...).

    Yields the base directory; the input and output folders exist. Metadata saving is on.
    The previous folder_paths configuration is restored afterwards.
    """
    state = folder_paths_state()
    folder_paths.configure(base_directory=tmp_path)
    for name in ("input", "output"):
        (tmp_path / name).mkdir()
    previous = getattr(cli_args.args, "disable_metadata", False)
    cli_args.args.disable_metadata = False
    try:
        yield tmp_path
    finally:
        cli_args.args.disable_metadata = previous
        restore_folder_paths(state)


def run_node(cls, **inputs):
    """Instantiate a V1 node class and call its FUNCTION, as the engine does."""
    node = cls()
    return getattr(node, cls.FUNCTION)(**inputs)
