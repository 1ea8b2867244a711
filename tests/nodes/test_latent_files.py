"""SaveLatent / LoadLatent: ComfyUI's .latent files in the output and input folders."""

from __future__ import annotations

import json
import os

import pytest
import torch

from opencomfy.compat import folder_paths
from opencomfy.compat.safetensors_file import load_file, save_file
from opencomfy.compat.comfy import cli_args
from opencomfy.nodes.latent_files import LoadLatent, SaveLatent


@pytest.fixture
def folders(tmp_path):
    """folder_paths pointed at a fresh base folder, and put back afterwards."""
    previous = dict(base_directory=folder_paths.base_path,
                    output_directory=folder_paths.get_output_directory(),
                    input_directory=folder_paths.get_input_directory(),
                    temp_directory=folder_paths.get_temp_directory(),
                    user_directory=folder_paths.get_user_directory(),
                    models_directory=folder_paths.models_dir)
    folder_paths.configure(base_directory=tmp_path)
    os.makedirs(folder_paths.get_input_directory(), exist_ok=True)
    yield tmp_path
    folder_paths.configure(**previous)


def save(samples, prefix="latents/ComfyUI", prompt=None, extra_pnginfo=None):
    return SaveLatent().save({"samples": samples}, filename_prefix=prefix, prompt=prompt,
                             extra_pnginfo=extra_pnginfo)


def test_save_latent_writes_numbered_files_and_reports_them(folders):
    samples = torch.arange(32.0).reshape(1, 2, 4, 4)
    first = save(samples, prompt={"1": {"class_type": "X"}},
                 extra_pnginfo={"workflow": {"nodes": []}})
    second = save(samples)
    assert first == {"ui": {"latents": [
        {"filename": "ComfyUI_00001_.latent", "subfolder": "latents", "type": "output"}]}}
    assert second["ui"]["latents"][0]["filename"] == "ComfyUI_00002_.latent"

    path = os.path.join(folder_paths.get_output_directory(), "latents", "ComfyUI_00001_.latent")
    tensors, metadata = load_file(path)
    assert torch.equal(tensors["latent_tensor"], samples)
    assert tensors["latent_format_version_0"].numel() == 0
    assert json.loads(metadata["prompt"]) == {"1": {"class_type": "X"}}
    assert json.loads(metadata["workflow"]) == {"nodes": []}


def test_save_latent_without_metadata(folders, monkeypatch):
    monkeypatch.setattr(cli_args.args, "disable_metadata", True)
    entry = save(torch.zeros(1, 4, 2, 2), prefix="plain", prompt={"a": 1})["ui"]["latents"][0]
    assert entry["subfolder"] == ""
    _, metadata = load_file(os.path.join(folder_paths.get_output_directory(), entry["filename"]))
    assert metadata == {}


def test_save_latent_refuses_to_leave_the_output_folder(folders):
    with pytest.raises(ValueError):
        save(torch.zeros(1, 4, 2, 2), prefix="../outside/x")


def test_load_latent_round_trip_and_combo(folders):
    samples = torch.randn(2, 4, 3, 5)
    entry = save(samples)["ui"]["latents"][0]
    source = os.path.join(folder_paths.get_output_directory(), "latents", entry["filename"])
    with open(source, "rb") as handle:
        data = handle.read()
    for name in ("b.latent", "a.latent"):
        with open(os.path.join(folder_paths.get_input_directory(), name), "wb") as handle:
            handle.write(data)
    open(os.path.join(folder_paths.get_input_directory(), "notes.txt"), "w").close()

    assert LoadLatent.INPUT_TYPES() == {"required": {"latent": (["a.latent", "b.latent"],)}}
    (latent,) = LoadLatent().load("a.latent")
    assert torch.equal(latent["samples"], samples)
    (latent,) = LoadLatent().load(f"latents/{entry['filename']} [output]")
    assert torch.equal(latent["samples"], samples)


def test_load_latent_rescales_files_without_the_version_marker(folders):
    path = os.path.join(folder_paths.get_input_directory(), "old.latent")
    save_file({"latent_tensor": torch.full((1, 4, 2, 2), 0.18215, dtype=torch.float16)}, path)
    (latent,) = LoadLatent().load("old.latent")
    assert latent["samples"].dtype == torch.float32
    assert torch.allclose(latent["samples"], torch.ones(1, 4, 2, 2), atol=1e-3)


def test_load_latent_change_detection_and_validation(folders):
    path = os.path.join(folder_paths.get_input_directory(), "x.latent")
    save_file({"latent_tensor": torch.zeros(1), "latent_format_version_0": torch.tensor([])},
              path)
    before = LoadLatent.IS_CHANGED("x.latent")
    assert before == LoadLatent.IS_CHANGED("x.latent")
    save_file({"latent_tensor": torch.ones(1), "latent_format_version_0": torch.tensor([])},
              path)
    assert LoadLatent.IS_CHANGED("x.latent") != before
    assert LoadLatent.VALIDATE_INPUTS("x.latent") is True
    assert LoadLatent.VALIDATE_INPUTS("missing.latent") == "Invalid latent file: missing.latent"
    assert LoadLatent.VALIDATE_INPUTS("../x.latent") == "Invalid latent file: ../x.latent"


def test_declarations_match_comfyui():
    assert SaveLatent.INPUT_TYPES() == {
        "required": {"samples": ("LATENT",),
                     "filename_prefix": ("STRING", {"default": "latents/ComfyUI"})},
        "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"},
    }
    assert SaveLatent.OUTPUT_NODE is True and SaveLatent.RETURN_TYPES == ()
    assert SaveLatent.CATEGORY == LoadLatent.CATEGORY == "_for_testing"
