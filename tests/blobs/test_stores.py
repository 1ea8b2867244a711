"""Both blob stores through one contract: put, exists, read, delete, signed URLs, hashing."""

from __future__ import annotations

import io
import urllib.error
import urllib.request

import blake3
import pytest

from opencomfy.blobs import BlobNotFound, BlobTooLarge, content_key
from opencomfy.blobs.local import LocalBlobStore
from opencomfy.blobs.s3 import S3BlobStore, S3Error
from tests.blobs.s3_server import new_bucket_name, require_s3


@pytest.fixture(params=["local", "s3"])
async def store(request, tmp_path):
    if request.param == "local":
        st = LocalBlobStore(tmp_path / "blobs")
    else:
        s3 = require_s3()
        st = S3BlobStore(endpoint=s3["endpoint"], bucket=new_bucket_name(), access_key=s3["access_key"],
                         secret_key=s3["secret_key"], staging_dir=tmp_path / "staging")
    await st.open()
    yield st
    await st.close()


def _stage(store, data: bytes, chunk: int = 7):
    staged = store.stage()
    for i in range(0, len(data), chunk):
        staged.write(data[i:i + chunk])
    staged.finish()
    return staged


async def _read(store, key) -> bytes:
    return b"".join([c async for c in store.iter_bytes(key, chunk_size=1000)])


async def test_staged_hash_matches_blake3_and_round_trips(store):
    data = bytes(range(256)) * 40
    staged = _stage(store, data)
    assert staged.digest == "blake3:" + blake3.blake3(data).hexdigest()
    assert staged.size == len(data)
    key = content_key(staged.digest)
    assert not await store.exists(key)
    await store.put_file(key, staged.path)
    assert not staged.path.exists()  # consumed: nothing left in staging
    assert await store.exists(key)
    assert await _read(store, key) == data
    await store.delete(key)
    assert not await store.exists(key)
    await store.delete(key)  # deleting twice is fine
    with pytest.raises(BlobNotFound):
        await _read(store, key)


async def test_limit_stops_an_oversize_body(store):
    staged = store.stage(limit=10)
    staged.write(b"12345")
    with pytest.raises(BlobTooLarge):
        staged.write(b"123456")
    staged.abort()
    assert not staged.path.exists()
    assert list(store.staging_dir.glob(".staging-*")) == []


async def test_signed_url(store):
    staged = _stage(store, b"signed bytes")
    await store.put_file("exports/w/a.zip", staged.path)
    url = await store.signed_url("exports/w/a.zip", filename="a.zip", content_type="application/zip")
    if store.kind == "local":
        assert url is None and store.local_path("exports/w/a.zip").read_bytes() == b"signed bytes"
        return
    with urllib.request.urlopen(url) as r:
        assert r.read() == b"signed bytes"
        assert r.headers["Content-Type"] == "application/zip"
    tampered = url.replace("exports/w/a.zip", "exports/w/b.zip")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(tampered)
    assert err.value.code == 403


async def test_s3_refuses_a_wrong_secret(tmp_path):
    s3 = require_s3()
    bad = S3BlobStore(endpoint=s3["endpoint"], bucket=new_bucket_name(), access_key=s3["access_key"],
                      secret_key="wrong-secret", staging_dir=tmp_path / "staging")
    with pytest.raises(S3Error):
        await bad.open()
    await bad.close()


async def test_s3_multipart_upload(tmp_path, monkeypatch):
    s3 = require_s3()
    import opencomfy.blobs.s3 as s3mod

    monkeypatch.setattr(s3mod, "MULTIPART_THRESHOLD", 6 * 1024 * 1024)
    monkeypatch.setattr(s3mod, "PART_SIZE", 5 * 1024 * 1024)  # S3's smallest part
    st = S3BlobStore(endpoint=s3["endpoint"], bucket=new_bucket_name(), access_key=s3["access_key"],
                     secret_key=s3["secret_key"], staging_dir=tmp_path / "staging")
    await st.open()
    try:
        data = bytes(range(256)) * (12 * 4096)  # 12 MiB: three parts
        staged = _stage(st, data, chunk=1 << 20)
        await st.put_file("big", staged.path)
        got = await _read(st, "big")
        assert len(got) == len(data) and got == data
    finally:
        await st.close()


async def test_local_keys_cannot_escape_the_root(tmp_path):
    st = LocalBlobStore(tmp_path / "blobs")
    await st.open()
    with pytest.raises(ValueError):
        await st.exists("../outside")


async def test_large_writes_hash_in_parallel_correctly(tmp_path):
    st = LocalBlobStore(tmp_path / "blobs")
    await st.open()
    data = bytes(range(256)) * (3 * 4096 + 17)  # ~3 MB, not a multiple of the chunk
    staged = _stage(st, data, chunk=1 << 20)
    assert staged.digest == "blake3:" + blake3.blake3(data).hexdigest()
    assert staged.path.read_bytes() == data
    staged.abort()


async def test_signed_urls_use_the_public_endpoint(tmp_path):
    s3 = require_s3()
    st = S3BlobStore(endpoint=s3["endpoint"], bucket=new_bucket_name(), access_key=s3["access_key"],
                     secret_key=s3["secret_key"], staging_dir=tmp_path / "staging",
                     public_endpoint="https://cdn.example.com:9000")
    await st.open()
    try:
        url = await st.signed_url("blobs/ab/x")
        assert url.startswith(f"https://cdn.example.com:9000/{st.bucket}/blobs/ab/x?")
        assert "X-Amz-Expires=3600" in url
    finally:
        await st.close()


async def test_s3_upload_reads_the_staged_file_once(tmp_path, monkeypatch):
    """No second pass over the file to hash it for the signature or a checksum."""
    s3 = require_s3()
    import opencomfy.blobs.s3 as s3mod

    bytes_read = []

    class CountingReader(io.BufferedReader):
        def read(self, size=-1):
            chunk = super().read(size)
            bytes_read.append(len(chunk))
            return chunk

        def readinto(self, buffer):
            n = super().readinto(buffer)
            bytes_read.append(n or 0)
            return n

    monkeypatch.setattr(s3mod, "open", lambda path, mode: CountingReader(io.FileIO(path, "r")),
                        raising=False)
    st = S3BlobStore(endpoint=s3["endpoint"], bucket=new_bucket_name(), access_key=s3["access_key"],
                     secret_key=s3["secret_key"], staging_dir=tmp_path / "staging")
    await st.open()
    try:
        data = bytes(range(256)) * 8192  # 2 MiB
        staged = _stage(st, data, chunk=1 << 20)
        await st.put_file("once", staged.path, content_type="application/octet-stream")
        assert sum(bytes_read) == len(data)
        assert await _read(st, "once") == data
    finally:
        await st.close()


async def test_s3_failed_multipart_upload_is_aborted(tmp_path, monkeypatch):
    s3 = require_s3()
    import opencomfy.blobs.s3 as s3mod

    monkeypatch.setattr(s3mod, "MULTIPART_THRESHOLD", 6 * 1024 * 1024)
    monkeypatch.setattr(s3mod, "PART_SIZE", 5 * 1024 * 1024)
    st = S3BlobStore(endpoint=s3["endpoint"], bucket=new_bucket_name(), access_key=s3["access_key"],
                     secret_key=s3["secret_key"], staging_dir=tmp_path / "staging")
    await st.open()
    try:
        client = await st._s3()
        real_upload_part, calls = client.upload_part, []

        async def failing_second_part(**kwargs):
            calls.append(kwargs["PartNumber"])
            if kwargs["PartNumber"] == 2:
                raise RuntimeError("connection lost")
            return await real_upload_part(**kwargs)

        monkeypatch.setattr(client, "upload_part", failing_second_part)
        staged = _stage(st, bytes(12 * 1024 * 1024), chunk=1 << 20)
        with pytest.raises(RuntimeError):
            await st.put_file("broken", staged.path)
        assert calls == [1, 2] and not staged.path.exists()
        assert not await st.exists("broken")
        uploads = await client.list_multipart_uploads(Bucket=st.bucket)
        assert uploads.get("Uploads", []) == []  # the started upload was aborted
    finally:
        await st.close()


async def test_signed_urls_for_the_public_host_are_signed_for_it(tmp_path):
    """The public host is signed into the URL, so the server accepts it under that name."""
    s3 = require_s3()
    public = s3["endpoint"].replace("127.0.0.1", "localhost")
    if public == s3["endpoint"]:
        pytest.skip("the test S3 endpoint is not on 127.0.0.1")
    st = S3BlobStore(endpoint=s3["endpoint"], bucket=new_bucket_name(), access_key=s3["access_key"],
                     secret_key=s3["secret_key"], staging_dir=tmp_path / "staging",
                     public_endpoint=public)
    await st.open()
    try:
        await st.put_file("blobs/cd/y", _stage(st, b"public bytes").path)
        url = await st.signed_url("blobs/cd/y", expires_in=60)
        assert url.startswith(f"{public}/{st.bucket}/blobs/cd/y?")
        with urllib.request.urlopen(url) as r:
            assert r.read() == b"public bytes"
        with pytest.raises(urllib.error.HTTPError) as err:  # the same signature, another host
            urllib.request.urlopen(url.replace("localhost", "127.0.0.1"))
        assert err.value.code == 403
    finally:
        await st.close()
