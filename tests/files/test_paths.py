"""Path confinement: nothing a client names may leave its root."""

from __future__ import annotations

import os

import pytest

from opencomfy.files.paths import FolderRoots, UnsafePath, confined_path, split_annotation


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "root"
    (r / "sub").mkdir(parents=True)
    (r / "sub" / "a.png").write_bytes(b"x")
    (tmp_path / "secret.txt").write_text("secret")
    return r


def test_plain_paths_resolve_inside(root):
    assert confined_path(root, "sub", "a.png") == (root / "sub" / "a.png").resolve()
    assert confined_path(root, "", "new.png") == (root / "new.png").resolve()
    assert confined_path(root, "sub/deeper", "x.png").parent == (root / "sub" / "deeper").resolve()


@pytest.mark.parametrize("part", ["..", "../secret.txt", "sub/../../secret.txt", "/etc/passwd",
                                  "a\x00b", "sub\\..\\..\\secret.txt", "..\\secret.txt"])
def test_hostile_parts_are_refused(root, part):
    with pytest.raises(UnsafePath):
        confined_path(root, part)
    with pytest.raises(UnsafePath):
        confined_path(root, "", part)


def test_symlink_out_of_root_is_refused(root, tmp_path):
    os.symlink(tmp_path / "secret.txt", root / "link.txt")
    os.symlink(tmp_path, root / "outdir")
    with pytest.raises(UnsafePath):
        confined_path(root, "link.txt")
    with pytest.raises(UnsafePath):
        confined_path(root, "outdir", "secret.txt")
    with pytest.raises(UnsafePath):
        confined_path(root, "outdir/new-file.png")  # not existing yet: parents still resolved


def test_symlink_inside_root_is_allowed(root):
    os.symlink(root / "sub" / "a.png", root / "alias.png")
    assert confined_path(root, "alias.png") == (root / "sub" / "a.png").resolve()


def test_names_with_dots_that_do_not_climb_are_fine(root):
    assert confined_path(root, "a..b.png").name == "a..b.png"
    assert confined_path(root, "...").name == "..."


def test_annotations():
    assert split_annotation("x.png [output]") == ("x.png", "output")
    assert split_annotation("a b.png [input]") == ("a b.png", "input")
    assert split_annotation("x.png [temp]") == ("x.png", "temp")
    assert split_annotation("x.png [other]") == ("x.png [other]", None)
    assert split_annotation("x.png") == ("x.png", None)


def test_locate_uses_annotation_over_type(tmp_path):
    roots = FolderRoots(input=tmp_path / "i", output=tmp_path / "o", temp=tmp_path / "t")
    path, kind = roots.locate(filename="x.png [input]", subfolder="s", folder_type="temp")
    assert kind == "input" and path == (tmp_path / "i" / "s" / "x.png").resolve()
    path, kind = roots.locate(filename="x.png")
    assert kind == "output"
    with pytest.raises(UnsafePath):
        roots.locate(filename="x.png", folder_type="models")
    with pytest.raises(UnsafePath):
        roots.locate(filename=" [input]")
