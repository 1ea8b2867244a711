"""Pure checks: model formats (safetensors only) and zip safety (names, counts, ratios)."""

from __future__ import annotations

import io
import zipfile

import pytest

from opencomfy.assets import archive
from opencomfy.assets.errors import BadArchive, FormatNotAllowed
from opencomfy.assets.formats import check_model_format, looks_like_pickle, looks_like_safetensors
from tests.assets.factories import pickle_bytes, safetensors_bytes, zip_bytes


def test_model_formats():
    check_model_format("m.safetensors", safetensors_bytes()[:64])
    check_model_format("m.gguf", b"GGUF\x03\x00\x00\x00")
    for name, head in (("m.ckpt", safetensors_bytes()[:64]), ("m.pt", b""), ("m.bin", b""),
                       ("m.safetensors", pickle_bytes()[:64]), ("m.safetensors", b"PK\x03\x04rest"),
                       ("m.safetensors", b"not a header at all")):
        with pytest.raises(FormatNotAllowed) as err:
            check_model_format(name, head)
        assert err.value.code == "FORMAT_NOT_ALLOWED" and err.value.field == "format"
    assert looks_like_pickle(pickle_bytes()) and not looks_like_pickle(safetensors_bytes())
    assert looks_like_safetensors(safetensors_bytes()) and not looks_like_safetensors(b"\x00" * 16)


def _infos(data: bytes) -> list:
    return archive.check_archive(zipfile.ZipFile(io.BytesIO(data)), max_expanded=1 << 30)


def test_archive_names():
    assert [i.filename for i in _infos(zip_bytes({"a.png": b"1", "dir/b.png": b"2"}))] == ["a.png", "dir/b.png"]
    for bad in ("../x", "a/../../x", "/abs", "\\\\server\\share", "C:/x", "a\\..\\x"):
        with pytest.raises(BadArchive):
            _infos(zip_bytes({bad: b"x"}))


def test_archive_limits(monkeypatch):
    monkeypatch.setattr(archive, "MAX_ENTRIES", 3)
    with pytest.raises(BadArchive, match="entries"):
        _infos(zip_bytes({f"{i}.txt": b"x" for i in range(4)}))
    with pytest.raises(BadArchive, match="expands"):
        archive.check_archive(zipfile.ZipFile(io.BytesIO(zip_bytes({"a": b"x" * 100}))), max_expanded=50)
    bomb = zip_bytes({"z": b"\0" * (4 << 20)}, compression=zipfile.ZIP_DEFLATED)
    with pytest.raises(BadArchive, match="zip bomb"):
        _infos(bomb)
    # compressible but small entries are fine
    assert len(_infos(zip_bytes({"z": b"\0" * 1000}, compression=zipfile.ZIP_DEFLATED))) == 1


def test_export_entry_names():
    used: set[str] = set()
    row = {"id": "11111111-2222-3333-4444-555555555555", "name": "dir/../img.png", "job_id": "job1",
           "created_at": 0}
    assert archive._entry_name(row, "preserve", used) == "img.png"
    assert archive._entry_name(row, "preserve", used) is None  # first one wins
    assert archive._entry_name(row, "group_by_job_id", set()) == "job1/img.png"
    assert archive._entry_name(row, "asset_id", set()) == f"{row['id']}.png"
    assert archive._entry_name(row, "group_by_job_time", set()) == "1970-01-01T00-00-00/img.png"
    twice: set[str] = set()
    archive._entry_name(row, "group_by_job_id", twice)
    assert archive._entry_name({**row, "id": "99999999-0000"}, "group_by_job_id", twice) == "job1/img_99999999.png"
