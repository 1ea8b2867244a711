"""Per-workspace folders in folder_paths and the catalogue (no server): a workspace resolves
input/output/temp to its own sub-folder, annotations and `../` stay inside it, code with no
workspace lands in `_unscoped`, and the shared layout (`--auth none`) is unchanged."""

from __future__ import annotations

import asyncio
import os

import pytest

from opencomfy.catalogue import Catalogue
from opencomfy.compat import folder_paths as fp
from opencomfy.config import Config
from opencomfy.engine.registry import NodeRegistry
from opencomfy.files.paths import FolderRoots
from opencomfy.files.workspace_roots import (UNSCOPED_DIR, current_workspace, dir_name,
                                             is_reserved_name, scoped_root, use_workspace)


@pytest.fixture
def per_workspace(tmp_path):
    fp.configure(base_directory=tmp_path, per_workspace=True)
    yield tmp_path
    fp.configure(base_directory=tmp_path)  # back to the shared layout for other tests


def test_dir_names_are_derived_from_the_id_only():
    assert dir_name("w-1b4e28ba-2fa1-11d2-883f-0016d3cca427") == "ws-w-1b4e28ba-2fa1-11d2-883f-0016d3cca427"
    for hostile in ("../x", "A", "a/b", "a.b", "", "x" * 70, "local\x00"):
        name = dir_name(hostile)
        assert "/" not in name and ".." not in name and "\x00" not in name
        assert is_reserved_name(name)
    assert dir_name("../x").startswith("wsh-") and dir_name(None) == UNSCOPED_DIR
    assert dir_name("a.b") != dir_name("a-b")
    assert not is_reserved_name("clipspace") and not is_reserved_name("")


def test_shared_layout_is_unchanged(tmp_path):
    fp.configure(base_directory=tmp_path)
    with use_workspace("w-a"):
        assert fp.get_input_directory() == os.path.join(tmp_path, "input")
        assert fp.output_directory == os.path.join(tmp_path, "output")
        assert fp.get_annotated_filepath("x.png [temp]") == os.path.join(tmp_path, "temp", "x.png")
    assert scoped_root(tmp_path, "w-a") == tmp_path


def test_each_workspace_resolves_its_own_folders(per_workspace):
    base = str(per_workspace)
    with use_workspace("w-a"):
        assert current_workspace() == "w-a"
        for kind in ("input", "output", "temp"):
            mine = os.path.join(base, kind, "ws-w-a")
            assert getattr(fp, f"get_{kind}_directory")() == mine
            assert getattr(fp, f"{kind}_directory") == mine  # the module attribute too
            assert fp.get_directory_by_type(kind) == mine
            assert os.path.isdir(mine)  # made on first use: listing it never fails
        assert fp.get_annotated_filepath("a.png") == os.path.join(base, "input", "ws-w-a", "a.png")
        assert fp.get_annotated_filepath("o.png [output]") == os.path.join(base, "output", "ws-w-a", "o.png")
        for escape in ("../ws-w-b/b.png", "../b.png [output]", "sub/../../ws-w-b/b.png [temp]"):
            with pytest.raises(ValueError):
                fp.get_annotated_filepath(escape)
            assert not fp.exists_annotated_filepath(escape)
        folder, stem, _, subfolder, _ = fp.get_save_image_path("s/x", fp.get_output_directory())
        assert folder == os.path.join(base, "output", "ws-w-a", "s") and subfolder == "s"
        with pytest.raises(ValueError):
            fp.get_save_image_path("../ws-w-b/x", fp.get_output_directory())
    assert current_workspace() is None
    # No workspace known (a thread a node started itself): the empty `_unscoped` folder.
    assert fp.get_input_directory() == os.path.join(base, "input", UNSCOPED_DIR)
    assert fp.get_root_directory("input") == os.path.join(base, "input")


def test_a_file_of_one_workspace_does_not_exist_for_another(per_workspace):
    with use_workspace("w-a"):
        with open(os.path.join(fp.get_input_directory(), "secret.png"), "wb") as f:
            f.write(b"x")
        assert fp.exists_annotated_filepath("secret.png")
    with use_workspace("w-b"):
        assert not fp.exists_annotated_filepath("secret.png")
        assert not fp.exists_annotated_filepath("secret.png [input]")
        assert os.listdir(fp.get_input_directory()) == []


def test_folder_roots_for_a_workspace(tmp_path):
    shared = Config(base_directory=tmp_path)
    assert FolderRoots.for_workspace(shared, "w-a") == FolderRoots.from_config(shared)
    tenant = Config(base_directory=tmp_path, auth="required")
    roots = FolderRoots.for_workspace(tenant, "w-a")
    assert roots.input == tenant.input_dir / "ws-w-a" and roots.temp == tenant.temp_dir / "ws-w-a"
    assert FolderRoots.for_workspace(tenant, None).output == tenant.output_dir / UNSCOPED_DIR


class ListsInput:
    """A node whose combo lists the input folder, as LoadImage does."""

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "run"
    CATEGORY = "test"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": (sorted(os.listdir(fp.get_input_directory())),)}}


def test_catalogue_per_workspace(per_workspace):
    registry = NodeRegistry()
    registry.add("ListsInput", ListsInput)
    catalogue = Catalogue(registry, Config(base_directory=per_workspace, auth="required"),
                          check_interval=0)
    with use_workspace("w-a"):
        open(os.path.join(fp.get_input_directory(), "a.png"), "wb").close()

    def choices(snap) -> list:
        return snap.node_bodies["ListsInput"].decode()

    a, b = catalogue.snapshot_sync("w-a"), catalogue.snapshot_sync("w-b")
    assert "a.png" in choices(a) and "a.png" not in choices(b)
    assert a.etag != b.etag and a.node_etag("ListsInput") != b.node_etag("ListsInput")
    # Two empty workspaces have equal bodies but still their own tags.
    c = catalogue.snapshot_sync("w-c")
    assert c.body == b.body and c.etag != b.etag
    # The request's workspace (set by the auth layer) is the default.
    with use_workspace("w-a"):
        assert asyncio.run(catalogue.snapshot()) is a
    assert catalogue.snapshot_sync("w-a") is a  # kept: nothing changed


def test_catalogue_shared_layout_has_one_catalogue(tmp_path):
    fp.configure(base_directory=tmp_path)
    registry = NodeRegistry()
    registry.add("ListsInput", ListsInput)
    os.makedirs(tmp_path / "input")
    catalogue = Catalogue(registry, Config(base_directory=tmp_path), check_interval=3600)
    assert catalogue.snapshot_sync("w-a") is catalogue.snapshot_sync("w-b")
