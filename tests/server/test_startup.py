"""What a start does to the folders: ComfyUI's layout is created, the temp folder is emptied."""

from __future__ import annotations


def test_start_creates_the_layout_and_empties_temp(make_server, tmp_path):
    base = tmp_path / "base"
    (base / "temp" / "sub").mkdir(parents=True)
    (base / "temp" / "ComfyUI_temp_abcde_00001_.png").write_bytes(b"old preview")
    (base / "temp" / "sub" / "x.png").write_bytes(b"old")
    (base / "output").mkdir()
    (base / "output" / "keep.png").write_bytes(b"kept")
    make_server(base_dir=base)
    for folder in ("input", "output", "temp", "user", "models"):
        assert (base / folder).is_dir(), folder
    assert list((base / "temp").iterdir()) == []
    assert (base / "output" / "keep.png").read_bytes() == b"kept"
