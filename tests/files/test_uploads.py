"""Upload naming: ComfyUI's ` (n)` suffix, identical bytes reuse the name."""

from __future__ import annotations

import io

import pytest

from opencomfy.files.paths import UnsafePath
from opencomfy.files.uploads import parse_flag, store_upload


def _store(root, name, data: bytes, overwrite=False, subfolder=""):
    return store_upload(root=root, subfolder=subfolder, filename=name, data=io.BytesIO(data),
                        overwrite=overwrite)


def test_suffixes_and_identical_reuse(tmp_path):
    a = _store(tmp_path, "img.png", b"one")
    assert (a.name, a.written) == ("img.png", True)
    b = _store(tmp_path, "img.png", b"two")
    assert (b.name, b.written) == ("img (1).png", True)
    c = _store(tmp_path, "img.png", b"three")
    assert c.name == "img (2).png"
    # Same bytes as "img (1).png": found while walking the suffixes, nothing written.
    d = _store(tmp_path, "img.png", b"two")
    assert (d.name, d.written) == ("img (1).png", False)
    e = _store(tmp_path, "img.png", b"one")
    assert (e.name, e.written) == ("img.png", False)
    assert (tmp_path / "img (2).png").read_bytes() == b"three"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img (1).png", "img (2).png", "img.png"]


def test_overwrite_replaces(tmp_path):
    _store(tmp_path, "x.bin", b"old")
    r = _store(tmp_path, "x.bin", b"new", overwrite=True)
    assert r.name == "x.bin" and (tmp_path / "x.bin").read_bytes() == b"new"


def test_subfolder_is_created_and_confined(tmp_path):
    r = _store(tmp_path, "x.png", b"data", subfolder="a/b")
    assert (tmp_path / "a" / "b" / "x.png").read_bytes() == b"data" and r.name == "x.png"
    for bad_sub, bad_name in [("..", "x.png"), ("/tmp", "x.png"), ("", "../x.png"),
                              ("", "a\x00.png"), ("a\\..", "x.png"), ("", "")]:
        with pytest.raises(UnsafePath):
            _store(tmp_path, bad_name, b"d", subfolder=bad_sub)


def test_a_directory_is_never_overwritten(tmp_path):
    (tmp_path / "taken").mkdir()
    r = _store(tmp_path, "taken", b"x", overwrite=True)
    assert r.name == "taken (1)" and (tmp_path / "taken").is_dir()
    for bad in (".", "sub/.", "sub/", "sub/.."):
        with pytest.raises(UnsafePath):
            _store(tmp_path, bad, b"x")


def test_no_extension_suffix(tmp_path):
    _store(tmp_path, "noext", b"1")
    assert _store(tmp_path, "noext", b"2").name == "noext (1)"


def test_parse_flag():
    assert parse_flag("true") and parse_flag("1") and parse_flag("TRUE")
    assert not parse_flag("false") and not parse_flag(None) and not parse_flag("yes please")
