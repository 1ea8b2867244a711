"""Downloads never reach what they must not: every redirect hop is checked (scheme, allowlist,
resolved address), the checked addresses are the ones connected to (no DNS rebinding), and
redirects are capped. Only servers on 127.0.0.1 take traffic here; the other addresses are
judged by the classifier without any connection."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiohttp import web

from opencomfy.assets import download, egress
from opencomfy.assets.errors import InvalidAssetInput
from opencomfy.assets.service import AssetService
from opencomfy.blobs.local import LocalBlobStore
from opencomfy.config import Config

BODY = b"model bytes"


@asynccontextmanager
async def _local_server():
    """An aiohttp server on 127.0.0.1: `/file` answers BODY, `/to?u=URL` redirects to URL,
    `/loop` redirects to itself; `hits` lists the paths it was asked for."""
    hits: list[str] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        hits.append(request.path)
        if request.path == "/to":
            raise web.HTTPFound(request.query["u"])
        if request.path == "/loop":
            raise web.HTTPFound("/loop")
        return web.Response(body=BODY, headers={"Content-Disposition": 'attachment; filename="m.safetensors"'})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield port, hits
    finally:
        await runner.cleanup()


def _config(tmp_path: Path, *hosts: str) -> Config:
    # The server's own port is one nothing listens on: only the address rules are tested.
    return Config(base_directory=tmp_path, asset_download_hosts=hosts, port=1)


async def _get(url: str, config: Config, tmp_path: Path) -> bytes:
    """A whole download through `fetch`, into a real local blob store."""
    store = LocalBlobStore(tmp_path / "blobs")
    service = AssetService(db=None, store=store)  # type: ignore[arg-type]  # staging needs no db
    await service.open()
    fetched = await download.fetch(url, service=service, config=config)
    try:
        return fetched.staged.path.read_bytes()
    finally:
        fetched.staged.abort()


async def test_allowed_source_and_same_origin_redirect_are_fetched(tmp_path):
    async with _local_server() as (port, hits):
        config = _config(tmp_path, f"127.0.0.1:{port}")
        assert await _get(f"http://127.0.0.1:{port}/file", config, tmp_path) == BODY
        hop = f"http://127.0.0.1:{port}/to?u=/file"
        assert await _get(hop, config, tmp_path) == BODY
        assert hits == ["/file", "/to", "/file"]


@pytest.mark.parametrize("target", [
    "http://127.0.0.1:{other}/file",          # another loopback port, not on the allowlist
    "http://localhost:{other}/file",          # a name that resolves to loopback
    "http://[::ffff:127.0.0.1]:{other}/file",  # IPv4-mapped IPv6 loopback
    "http://2130706433:{other}/file",         # 127.0.0.1 as one number
    "http://0.0.0.0:{other}/file",            # unspecified
    "http://169.254.169.254/latest/meta-data",  # cloud metadata (link-local): never contacted
    "http://10.0.0.1/file",                   # private: never contacted
    "http://[fd00::1]/file",                  # unique-local: never contacted
    "ftp://127.0.0.1:{other}/file",           # another scheme
])
async def test_a_redirect_from_an_allowed_source_to_a_local_address_is_refused(tmp_path, target):
    async with _local_server() as (port, hits), _local_server() as (other, other_hits):
        # The allowlist names the first server's address and port only.
        config = _config(tmp_path, f"127.0.0.1:{port}", "localhost")
        url = f"http://127.0.0.1:{port}/to?u=" + target.format(other=other)
        with pytest.raises(InvalidAssetInput):
            await _get(url, config, tmp_path)
        with pytest.raises(InvalidAssetInput):
            await download.remote_metadata(url, config=config)
        assert hits == ["/to", "/to"] and other_hits == []  # the target never saw a request


async def test_a_listed_name_that_resolves_to_loopback_is_refused(tmp_path):
    async with _local_server() as (port, hits):
        config = _config(tmp_path, "localhost")
        with pytest.raises(InvalidAssetInput, match="loopback"):
            await download.check_url(f"http://localhost:{port}/file", config=config)
        with pytest.raises(InvalidAssetInput, match="loopback"):
            await download.remote_metadata(f"http://localhost:{port}/file", config=config)
        assert hits == []


async def test_redirects_are_capped(tmp_path):
    async with _local_server() as (port, hits):
        config = _config(tmp_path, f"127.0.0.1:{port}")
        with pytest.raises(download.DownloadFailed, match="too many redirects"):
            await download.remote_metadata(f"http://127.0.0.1:{port}/loop", config=config)
        assert len(hits) == download.MAX_REDIRECTS + 1


async def test_the_checked_addresses_are_the_ones_connected_to(tmp_path, monkeypatch):
    """DNS rebinding: the name answers a permitted address for the check, then anything
    else; the connection must use the first answer without asking again."""
    async with _local_server() as (port, hits):
        lookups: list[str] = []

        async def rebinding_getaddrinfo(host, port_, **kw):
            lookups.append(host)
            if len(lookups) > 1:
                raise AssertionError("the host was looked up again after the check")
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port_))]

        monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", rebinding_getaddrinfo)
        # The name is allowed; its address only because the allowlist names it literally.
        config = _config(tmp_path, "rebind.test", f"127.0.0.1:{port}")
        meta = await download.remote_metadata(f"http://rebind.test:{port}/file", config=config)
        assert meta["filename"] == "m.safetensors" and lookups == ["rebind.test"] and hits == ["/file"]


async def test_pinned_resolver_answers_only_pinned_hosts():
    resolver = egress.PinnedResolver()
    with pytest.raises(OSError):
        await resolver.resolve("example.com", 443)
    pinned = await egress.lookup("192.0.2.7", 443)
    resolver.pin("Example.COM.", 443, pinned)
    answer = await resolver.resolve("example.com", 443, family=socket.AF_UNSPEC)
    assert [a["host"] for a in answer] == ["192.0.2.7"]
    assert answer[0]["flags"] & socket.AI_NUMERICHOST  # never looked up again
    with pytest.raises(OSError):
        await resolver.resolve("example.com", 80)  # another port was not checked


@pytest.mark.parametrize("address, problem", [
    ("127.0.0.1", "loopback"), ("127.9.9.9", "loopback"), ("::1", "loopback"),
    ("10.1.2.3", "private"), ("172.16.0.1", "private"), ("192.168.1.1", "private"),
    ("169.254.169.254", "link-local"), ("fe80::1", "link-local"),
    ("fc00::1", "unique-local"), ("fd12:3456::1", "unique-local"),
    ("::ffff:127.0.0.1", "IPv4-mapped loopback"), ("::ffff:10.0.0.1", "IPv4-mapped private"),
    ("::ffff:169.254.169.254", "IPv4-mapped link-local"),
    ("::127.0.0.1", "IPv6-embedded loopback"), ("64:ff9b::a00:1", "IPv6-embedded private"),
    ("2002:7f00:1::", "IPv6-embedded loopback"),
    ("0.0.0.0", "unspecified"), ("::", "unspecified"),
    ("224.0.0.1", "multicast"), ("ff02::1", "multicast"), ("ff0e::1", "multicast"),
    ("240.0.0.1", "reserved"), ("fec0::1", "site-local"),
    ("100.64.0.1", "not globally routable"), ("192.0.2.1", "private"),
    ("8.8.8.8", None), ("2606:4700:4700::1111", None), ("::ffff:8.8.8.8", None),
    ("2002:808:808::1", None),
])
def test_address_classifier(address, problem):
    assert egress.address_problem(ipaddress.ip_address(address)) == problem


def test_allowlist_entries():
    name, with_port, literal, v6 = egress.allow_entries(
        ("HuggingFace.co", "mirror.example:8443", "127.0.0.1:9000", "[::1]:9000"))
    assert name.admits_host("cdn.huggingface.co", 443) and not name.admits_host("evilhuggingface.co", 443)
    assert with_port.admits_host("mirror.example", 8443) and not with_port.admits_host("mirror.example", 443)
    assert literal.admits_host("127.0.0.1", 9000) and not literal.admits_host("127.0.0.1", 9001)
    assert literal.admits_address(ipaddress.ip_address("::ffff:127.0.0.1"), 9000)
    assert not name.admits_address(ipaddress.ip_address("127.0.0.1"), 443)  # a name never opens an address
    assert v6.admits_host("[::1]", 9000) and v6.admits_address(ipaddress.ip_address("::1"), 9000)
