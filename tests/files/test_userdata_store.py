"""Userdata files, users and settings on disk."""

from __future__ import annotations

import json
import os

import pytest

from opencomfy.files.paths import UnsafePath
from opencomfy.userdata import settings, store
from opencomfy.userdata.users import (InvalidUsername, UnknownUser, add_user, load_users,
                                      resolve_user, user_root)


def test_list_files_modes(tmp_path):
    root = tmp_path / "default"
    for rel in ["w/a.json", "w/sub/b.json", "w/.hidden", "w/.git/c", "other.json"]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("{}")
    assert store.list_files(root=root, directory="w", recurse=False, full_info=False, split=False) == ["a.json"]
    assert store.list_files(root=root, directory="w", recurse=True, full_info=False,
                            split=False) == ["a.json", "sub/b.json"]
    assert store.list_files(root=root, directory="w", recurse=True, full_info=False,
                            split=True) == [["a.json", "a.json"], ["sub/b.json", "sub", "b.json"]]
    full = store.list_files(root=root, directory="w", recurse=True, full_info=True, split=False)
    assert [f["path"] for f in full] == ["a.json", "sub/b.json"]
    assert full[0]["size"] == 2 and abs(full[0]["modified"] - os.path.getmtime(root / "w/a.json") * 1000) < 1
    assert store.list_files(root=root, directory="missing", recurse=True, full_info=False, split=False) == []
    with pytest.raises(UnsafePath):
        store.list_files(root=root, directory="../", recurse=True, full_info=False, split=False)


def test_symlinked_file_out_of_root_not_listed(tmp_path):
    root = tmp_path / "default"
    (root / "w").mkdir(parents=True)
    (tmp_path / "secret.json").write_text("s")
    os.symlink(tmp_path / "secret.json", root / "w" / "leak.json")
    assert store.list_files(root=root, directory="w", recurse=True, full_info=False, split=False) == []
    with pytest.raises(UnsafePath):
        store.existing_file(root, "w/leak.json")


def test_write_move_delete(tmp_path):
    root = tmp_path / "u"
    p = store.write_file(root=root, rel="a/b.json", data=b"1", overwrite=True)
    assert p.read_bytes() == b"1"
    with pytest.raises(store.UserFileExists):
        store.write_file(root=root, rel="a/b.json", data=b"2", overwrite=False)
    moved = store.move_file(root=root, source="a/b.json", dest="c/d.json", overwrite=False)
    assert moved.read_bytes() == b"1" and not (root / "a/b.json").exists()
    with pytest.raises(store.UserFileNotFound):
        store.move_file(root=root, source="a/b.json", dest="x.json", overwrite=True)
    store.delete_file(root=root, rel="c/d.json")
    with pytest.raises(store.UserFileNotFound):
        store.delete_file(root=root, rel="c/d.json")


def test_v2_listing(tmp_path):
    root = tmp_path / "u"
    (root / "Zeta").mkdir(parents=True)
    (root / "alpha").mkdir()
    (root / "b.json").write_text("12")
    (root / "A.json").write_text("1")
    entries = store.list_dir_v2(root=root, rel="")
    assert [(e["name"], e["type"]) for e in entries] == [
        ("alpha", "directory"), ("Zeta", "directory"), ("A.json", "file"), ("b.json", "file")]
    assert entries[3]["size"] == 2 and entries[3]["path"] == "b.json"
    assert store.list_dir_v2(root=tmp_path / "nobody", rel="") == []
    with pytest.raises(store.UserFileNotFound):
        store.list_dir_v2(root=root, rel="nope")


def test_users(tmp_path):
    uid = add_user(user_dir=tmp_path, username="Ann Lee")
    assert uid.startswith("Ann-Lee_") and load_users(tmp_path) == {uid: "Ann Lee"}
    with pytest.raises(InvalidUsername):
        add_user(user_dir=tmp_path, username="Ann Lee")
    for bad in ["", "  ", "__system"]:
        with pytest.raises(InvalidUsername):
            add_user(user_dir=tmp_path, username=bad)
    assert resolve_user(user_dir=tmp_path, multi_user=False, header="whoever") == "default"
    assert resolve_user(user_dir=tmp_path, multi_user=True, header=None) == "default"
    assert resolve_user(user_dir=tmp_path, multi_user=True, header="") == "default"
    assert resolve_user(user_dir=tmp_path, multi_user=True, header=uid) == uid
    with pytest.raises(UnknownUser):
        resolve_user(user_dir=tmp_path, multi_user=True, header="someone-else")
    for bad in ["..", "a/b", "__sys", ""]:
        with pytest.raises(UnknownUser):
            user_root(user_dir=tmp_path, user_id=bad)


def test_settings_merge(tmp_path):
    assert settings.read_settings(tmp_path) == {}
    settings.update_settings(tmp_path, {"a": 1, "b": {"c": 2}})
    assert settings.update_settings(tmp_path, {"a": 3}) == {"a": 3, "b": {"c": 2}}
    assert json.loads((tmp_path / "comfy.settings.json").read_text()) == {"a": 3, "b": {"c": 2}}
    (tmp_path / "comfy.settings.json").write_text("{broken")
    assert settings.read_settings(tmp_path) == {}
