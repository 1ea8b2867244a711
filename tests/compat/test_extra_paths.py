"""extra_model_paths.yaml in ComfyUI's format."""

from __future__ import annotations

import os

from opencomfy.compat.extra_paths import ExtraPathsError, parse_extra_paths
from tests.compat.conftest import build, install_packs

YAML = """
comfyui:
    base_path: ../shared
    is_default: true
    checkpoints: models/checkpoints
    loras: |
        models/loras
        more/loras
    custom_nodes: nodes_elsewhere

other:
    upscale_models: relative/upscale
    embeddings: /absolute/embeddings
    my_new_kind:
        - list/entry

empty_section:
"""


def test_parse_resolves_paths_like_comfyui(tmp_path):
    conf_dir = tmp_path / "conf"
    conf_dir.mkdir()
    path = conf_dir / "extra_model_paths.yaml"
    path.write_text(YAML)
    shared = str(tmp_path / "shared")
    assert parse_extra_paths(path) == [
        ("checkpoints", os.path.join(shared, "models", "checkpoints"), True),
        ("loras", os.path.join(shared, "models", "loras"), True),
        ("loras", os.path.join(shared, "more", "loras"), True),
        ("custom_nodes", os.path.join(shared, "nodes_elsewhere"), True),
        ("upscale_models", str(conf_dir / "relative" / "upscale"), False),
        ("embeddings", "/absolute/embeddings", False),
        ("my_new_kind", str(conf_dir / "list" / "entry"), False),
    ]


def test_base_path_expands_user_and_variables(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENCOMFY_TEST_MODELS", str(tmp_path / "m"))
    path = tmp_path / "x.yaml"
    path.write_text("a:\n  base_path: $OPENCOMFY_TEST_MODELS\n  vae: vae\n")
    assert parse_extra_paths(path) == [("vae", str(tmp_path / "m" / "vae"), False)]


def test_broken_files_raise_a_clean_error(tmp_path):
    import pytest

    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [unclosed\n")
    with pytest.raises(ExtraPathsError):
        parse_extra_paths(bad)
    bad.write_text("- just\n- a list\n")
    with pytest.raises(ExtraPathsError):
        parse_extra_paths(bad)
    with pytest.raises(ExtraPathsError):
        parse_extra_paths(tmp_path / "missing.yaml")


def test_build_registry_applies_folders_and_loads_nodes_from_extra_folders(tmp_path):
    base = tmp_path / "base"
    base.mkdir()
    elsewhere = tmp_path / "shared"
    install_packs(elsewhere, ["single_file_pack.py"])
    (elsewhere / "models" / "checkpoints").mkdir(parents=True)
    (elsewhere / "models" / "checkpoints" / "model.safetensors").write_bytes(b"x")
    conf = tmp_path / "extra.yaml"
    conf.write_text("shared:\n  base_path: shared\n  is_default: true\n"
                    "  checkpoints: models/checkpoints\n  custom_nodes: custom_nodes\n")
    registry = build(base, extra_model_paths_config=(conf,))

    import folder_paths

    assert "SingleFileHello" in registry
    assert folder_paths.get_folder_paths("checkpoints")[0] == str(elsewhere / "models" / "checkpoints")
    assert folder_paths.get_filename_list("checkpoints") == ["model.safetensors"]
    assert folder_paths.get_folder_paths("custom_nodes") == [
        str(elsewhere / "custom_nodes"), str((base / "custom_nodes").resolve())]


def test_default_file_in_base_directory_is_read_and_bad_files_do_not_stop_start_up(tmp_path):
    (tmp_path / "extra_model_paths.yaml").write_text("a:\n  loras: /opt/loras\n")
    broken = tmp_path / "broken.yaml"
    broken.write_text("a: [unclosed\n")
    build(tmp_path, extra_model_paths_config=(broken,))

    import folder_paths

    assert "/opt/loras" in folder_paths.get_folder_paths("loras")
