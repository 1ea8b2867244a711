"""folder_paths: ComfyUI's module API over a configured folder layout."""

from __future__ import annotations

import os

import pytest

from opencomfy.compat import folder_paths as fp


def test_configure_lays_out_comfyuis_folders(comfy_dirs):
    base = str(comfy_dirs)
    assert fp.base_path == base and fp.models_dir == os.path.join(base, "models")
    assert fp.get_output_directory() == os.path.join(base, "output") == fp.output_directory
    assert fp.get_input_directory() == os.path.join(base, "input")
    assert fp.get_temp_directory() == os.path.join(base, "temp")
    assert fp.get_user_directory() == os.path.join(base, "user")
    models = fp.models_dir
    assert fp.get_folder_paths("checkpoints") == [os.path.join(models, "checkpoints")]
    assert fp.get_folder_paths("text_encoders") == [os.path.join(models, "text_encoders"),
                                                    os.path.join(models, "clip")]
    assert fp.get_folder_paths("clip") == fp.get_folder_paths("text_encoders")
    assert fp.get_folder_paths("unet") == [os.path.join(models, "unet"),
                                           os.path.join(models, "diffusion_models")]
    assert fp.get_folder_paths("controlnet")[1] == os.path.join(models, "t2i_adapter")
    assert fp.get_folder_paths("custom_nodes") == [os.path.join(base, "custom_nodes")]
    assert fp.folder_names_and_paths["custom_nodes"][1] == set()
    assert fp.folder_names_and_paths["configs"][1] == [".yaml"]
    for name in ("loras", "vae", "clip_vision", "style_models", "embeddings", "diffusers",
                 "vae_approx", "gligen", "upscale_models", "latent_upscale_models",
                 "hypernetworks", "photomaker", "classifiers", "model_patches", "audio_encoders"):
        assert name in fp.folder_names_and_paths
    assert ".safetensors" in fp.supported_pt_extensions and ".ckpt" in fp.supported_pt_extensions


def test_configure_with_explicit_directories(tmp_path):
    fp.configure(base_directory=tmp_path, output_directory=tmp_path / "o",
                 input_directory=tmp_path / "i", temp_directory=tmp_path / "t" / "temp",
                 user_directory=tmp_path / "u", models_directory=tmp_path / "m")
    assert fp.get_directory_by_type("output") == str(tmp_path / "o")
    assert fp.get_directory_by_type("input") == str(tmp_path / "i")
    assert fp.get_directory_by_type("temp") == str(tmp_path / "t" / "temp")
    assert fp.get_directory_by_type("user") is None
    assert fp.get_folder_paths("vae") == [str(tmp_path / "m" / "vae")]
    fp.set_output_directory(tmp_path / "o2")
    assert fp.get_output_directory() == str(tmp_path / "o2") == fp.output_directory


def test_filename_list_filters_extensions_recurses_and_sees_new_files(comfy_dirs):
    folder = comfy_dirs / "models" / "checkpoints"
    (folder / "sub").mkdir(parents=True)
    (folder / "b.safetensors").write_bytes(b"")
    (folder / "sub" / "a.ckpt").write_bytes(b"")
    (folder / "readme.txt").write_text("x")
    (folder / ".git").mkdir()
    (folder / ".git" / "x.pt").write_bytes(b"")
    assert fp.get_filename_list("checkpoints") == ["b.safetensors", os.path.join("sub", "a.ckpt")]
    (folder / "sub" / "new.pt").write_bytes(b"")
    assert os.path.join("sub", "new.pt") in fp.get_filename_list("checkpoints")


def test_filename_list_is_cached_while_the_folders_are_unchanged(comfy_dirs, monkeypatch):
    folder = comfy_dirs / "models" / "loras"
    folder.mkdir(parents=True)
    (folder / "x.safetensors").write_bytes(b"")
    old = os.path.getmtime(folder) - 60  # a folder that has been quiet for a minute
    os.utime(folder, (old, old))
    assert fp.get_filename_list("loras") == ["x.safetensors"]
    walks = []
    monkeypatch.setattr(fp.os, "walk", lambda *a, **k: walks.append(a) or iter(()))
    assert fp.get_filename_list("loras") == ["x.safetensors"]
    assert walks == []


def test_filename_list_picks_up_a_folder_created_later(comfy_dirs):
    assert fp.get_filename_list("vae") == []
    (comfy_dirs / "models" / "vae").mkdir(parents=True)
    (comfy_dirs / "models" / "vae" / "v.pt").write_bytes(b"")
    assert fp.get_filename_list("vae") == ["v.pt"]


def test_full_path_lookup_and_traversal(comfy_dirs):
    extra = comfy_dirs / "shared_vae"
    extra.mkdir()
    (extra / "e.pt").write_bytes(b"")
    fp.add_model_folder_path("vae", str(extra))
    assert fp.get_full_path("vae", "e.pt") == str(extra / "e.pt")
    assert fp.get_full_path("vae", "missing.pt") is None
    assert fp.get_full_path("nope", "e.pt") is None
    assert fp.get_full_path("vae", "../shared_vae/e.pt") is None
    with pytest.raises(FileNotFoundError, match="Model in folder 'vae' with filename 'x' not found."):
        fp.get_full_path_or_raise("vae", "x")
    assert "e.pt" in fp.get_filename_list("vae")


def test_add_model_folder_path_default_first_new_kind_and_legacy_names(comfy_dirs):
    fp.add_model_folder_path("unet", "/x/unet", is_default=True)
    assert fp.get_folder_paths("diffusion_models")[0] == "/x/unet"
    fp.add_model_folder_path("my_kind", "/x/mine")
    assert fp.folder_names_and_paths["my_kind"] == (["/x/mine"], set())
    fp.add_model_folder_path("my_kind", "/x/mine", is_default=True)
    assert fp.get_folder_paths("my_kind") == ["/x/mine"]
    assert fp.map_legacy("clip") == "text_encoders" and fp.map_legacy("loras") == "loras"


def test_annotated_paths(comfy_dirs):
    base = str(comfy_dirs)
    assert fp.annotated_filepath("a.png [output]") == ("a.png", os.path.join(base, "output"))
    assert fp.annotated_filepath("a.png [temp]") == ("a.png", os.path.join(base, "temp"))
    assert fp.annotated_filepath("a.png[input]") == ("a.png", os.path.join(base, "input"))
    assert fp.annotated_filepath("a.png") == ("a.png", None)
    assert fp.get_annotated_filepath("s/a.png [output]") == os.path.join(base, "output", "s", "a.png")
    assert fp.get_annotated_filepath("a.png") == os.path.join(base, "input", "a.png")
    assert fp.get_annotated_filepath("a.png", "/elsewhere") == "/elsewhere/a.png"
    (comfy_dirs / "output" / "a.png").write_bytes(b"")
    assert fp.exists_annotated_filepath("a.png [output]")
    assert not fp.exists_annotated_filepath("a.png")


@pytest.mark.parametrize("name", ["../secret.txt", "x/../../secret.txt", "/etc/passwd",
                                  "../secret.txt [output]"])
def test_annotated_paths_refuse_to_leave_their_folder(comfy_dirs, name):
    (comfy_dirs / "secret.txt").write_text("s")
    with pytest.raises(ValueError):
        fp.get_annotated_filepath(name)
    assert not fp.exists_annotated_filepath(name)


def test_save_image_path_matches_comfyui_and_sees_foreign_saves(comfy_dirs):
    out = str(comfy_dirs / "output")
    folder, name, counter, sub, prefix = fp.get_save_image_path("x/ComfyUI", out, 64, 32)
    assert (folder, name, counter, sub, prefix) == (os.path.join(out, "x"), "ComfyUI", 1, "x", "x/ComfyUI")
    # A custom node counts on its own from the counter it was given ...
    for n in (counter, counter + 1):
        (comfy_dirs / "output" / "x" / f"ComfyUI_{n:05}_.png").write_bytes(b"")
    (comfy_dirs / "output" / "x" / "ComfyUI_extra_00099_.png").write_bytes(b"")  # other stem
    (comfy_dirs / "output" / "x" / "ComfyUIx_00050_.png").write_bytes(b"")
    # ... and the next call sees what it wrote.
    assert fp.get_save_image_path("x/ComfyUI", out)[2] == 3
    assert fp.get_save_image_path("x/ComfyUI_%width%", out, 7, 8)[1] == "ComfyUI_7"
    with pytest.raises(ValueError):
        fp.get_save_image_path("../../x", out)


def test_content_type_and_extension_filters():
    files = ["a.png", "b.WEBP", "c.mp4", "d.flac", "e.txt", "noext"]
    assert fp.filter_files_content_types(files, ["image"]) == ["a.png", "b.WEBP"]
    assert fp.filter_files_content_types(files, ["video", "audio"]) == ["c.mp4", "d.flac"]
    assert fp.filter_files_extensions(["b.PT", "a.ckpt", "c.txt"], {".pt", ".ckpt"}) == ["a.ckpt", "b.PT"]
    assert fp.filter_files_extensions(["b", "a"], []) == ["a", "b"]


def test_recursive_search_and_cache_helper(comfy_dirs):
    root = comfy_dirs / "r"
    (root / "d").mkdir(parents=True)
    (root / "d" / "f").write_text("")
    files, dirs = fp.recursive_search(str(root))
    assert files == [os.path.join("d", "f")]
    assert set(dirs) == {str(root), str(root / "d")}
    assert fp.recursive_search(str(comfy_dirs / "missing")) == ([], {})
    with fp.cache_helper:
        first = fp.get_filename_list("checkpoints")
        assert fp.cache_helper.get("checkpoints")[0] == first
    assert fp.cache_helper.get("checkpoints") is None


def test_input_subfolders_and_system_user_directory(comfy_dirs):
    (comfy_dirs / "input" / "a" / "b").mkdir(parents=True)
    assert fp.get_input_subfolders() == ["a", "a/b"]
    assert fp.get_system_user_directory() == os.path.join(str(comfy_dirs), "user", "__default")
    with pytest.raises(ValueError):
        fp.get_system_user_directory("../x")


def test_save_image_path_date_tokens(comfy_dirs):
    import time

    before = time.localtime()
    _, name, _, sub, _ = fp.get_save_image_path("%year%/%month%-%day%_%hour%", str(comfy_dirs / "output"))
    after = time.localtime()
    candidates = {(str(t.tm_year), f"{t.tm_mon:02}-{t.tm_mday:02}_{t.tm_hour:02}") for t in (before, after)}
    assert (sub, name) in candidates
    _, name, _, _, _ = fp.get_save_image_path("t_%minute%%second%", str(comfy_dirs / "output"))
    assert len(name) == len("t_") + 4 and name[2:].isdigit()
