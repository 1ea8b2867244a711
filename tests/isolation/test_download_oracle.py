"""Download existence oracle: POST /api/assets/download of a URL another workspace already
fetched answers exactly as a fresh URL does (202 with a task, same body shape), and the task
fetches the URL again: A's download neither shows in B's answer nor in B's task's speed.
Only a workspace's own earlier download is answered at once (200 with its own record)."""

from __future__ import annotations

import asyncio
import hashlib
import threading
import uuid

import pytest
from aiohttp import web

from tests.assets.factories import safetensors_bytes, wait_task
from tests.harness import multipart
from tests.identity.fixtures import start_auth_server
from tests.identity.tenants import Tenant, new_tenant


def _body_of(path: str) -> bytes:
    """Each path serves its own (valid safetensors) bytes, so contents never collide across tests."""
    return safetensors_bytes(hashlib.sha256(path.encode()).digest() * 8)


class _Source:
    """An aiohttp server on 127.0.0.1, on its own thread and loop; `hits` counts the GETs per path."""

    def __init__(self) -> None:
        self.hits: dict[str, int] = {}
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._runner: web.AppRunner | None = None
        threading.Thread(target=self._run, daemon=True).start()
        assert self._ready.wait(10), "the source server did not start"

    async def _handle(self, request: web.Request) -> web.Response:
        self.hits[request.path] = self.hits.get(request.path, 0) + 1
        return web.Response(body=_body_of(request.path))

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.port = self._runner.addresses[0][1]

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._start())
        self._ready.set()
        self._loop.run_forever()

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)


@pytest.fixture(scope="module")
def source():
    src = _Source()
    yield src
    src.stop()


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def dl_server(request, tmp_path_factory, source):
    base = tmp_path_factory.mktemp(f"dl-oracle-{request.param}")
    # Only this test source's address and port are allowed (loopback is refused otherwise).
    srv = start_auth_server(base, request.param, "--asset-download-host", f"127.0.0.1:{source.port}")
    yield srv
    srv.stop()


def _download(t: Tenant, url: str):
    return t.post("/api/assets/download", {"source_url": url})


def _shape(r) -> tuple:
    """Everything of the answer that does not depend on the task's own id."""
    body = r.json()
    return r.status, sorted(body), body.get("status"), body.get("message")


def _finished(t: Tenant, r) -> dict:
    task = wait_task(t, r.json()["task_id"])  # type: ignore[arg-type]  # a Tenant gets like a Server
    assert task["status"] == "completed", task
    return task["result"]["asset"]


def test_a_url_another_workspace_downloaded_answers_like_a_fresh_one(dl_server, source):
    a, b = new_tenant(dl_server), new_tenant(dl_server)
    path = f"/m-{uuid.uuid4().hex}.safetensors"
    url = f"http://127.0.0.1:{source.port}{path}"
    first = _download(a, url)
    assert first.status == 202, first.body
    a_asset = _finished(a, first)
    assert source.hits[path] == 1
    # A asking again meets A's own record at once.
    again = _download(a, url)
    assert again.status == 200 and again.json()["id"] == a_asset["id"], again.body

    fresh_path = f"/fresh-{uuid.uuid4().hex}.safetensors"
    known, fresh = _download(b, url), _download(b, f"http://127.0.0.1:{source.port}{fresh_path}")
    assert known.status == fresh.status == 202, (known.body, fresh.body)
    assert _shape(known) == _shape(fresh), (known.body, fresh.body)
    b_asset, _ = _finished(b, known), _finished(b, fresh)
    # B's task fetched the URL itself (no shortcut through A's content, so no timing tell).
    assert source.hits[path] == 2 and source.hits[fresh_path] == 1
    assert b_asset["id"] != a_asset["id"] and b_asset["asset_hash"] == a_asset["asset_hash"]
    assert b.get(f"/api/assets/{b_asset['id']}/content").body == _body_of(path)
    assert b.get(f"/api/assets/{a_asset['id']}").status == 404
    # Now B has its own record: answered at once, with B's record.
    mine = _download(b, url)
    assert mine.status == 200 and mine.json()["id"] == b_asset["id"], mine.body


def test_own_upload_of_the_same_bytes_does_not_reveal_another_download(dl_server, source):
    a, c = new_tenant(dl_server), new_tenant(dl_server)
    path = f"/same-{uuid.uuid4().hex}.safetensors"
    url = f"http://127.0.0.1:{source.port}{path}"
    _finished(a, _download(a, url))
    body, ctype = multipart({"name": "mine.safetensors"}, {"file": ("mine.safetensors", _body_of(path))})
    assert c.request("POST", "/api/assets", data=body, headers={"Content-Type": ctype}).status == 201
    # C holds the bytes but never downloaded the URL: a task, as for any URL C never fetched.
    r = _download(c, url)
    assert r.status == 202, r.body
    assert _finished(c, r)["metadata"] == {"source_url": url}
