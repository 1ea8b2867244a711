"""`--auth none`: a web page on another site cannot drive the local server through the
visitor's browser. State-changing requests and websocket upgrades whose Origin is another
host:port (or `null`) get 403; requests without Origin (scripts) and the origin named by
`--enable-cors-header` pass."""

from __future__ import annotations

import pytest
import websocket

from opencomfy.http.origin import cross_origin
from tests.harness import Server
from tests.server.wsutil import image_graph

ALLOWED = "http://allowed.example:3000"


def test_cross_origin_compares_host_and_port():
    assert not cross_origin("http://127.0.0.1:8188", "127.0.0.1:8188")
    assert not cross_origin("http://LocalHost", "localhost:80")
    assert not cross_origin("https://comfy.example", "comfy.example")
    assert cross_origin("https://comfy.example", "comfy.example:80")
    assert cross_origin("http://localhost:8188", "127.0.0.1:8188")
    assert cross_origin("http://127.0.0.1:8189", "127.0.0.1:8188")
    assert cross_origin("null", "127.0.0.1:8188")
    assert cross_origin("file://", "127.0.0.1:8188")
    assert cross_origin("http://127.0.0.1:8188", None)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = Server(base_dir=tmp_path_factory.mktemp("origin"),
                 args=["--enable-cors-header", ALLOWED]).start()
    yield srv
    srv.stop()


def _post_prompt(server: Server, origin: str | None):
    headers = {"Content-Type": "text/plain"}  # what a cross-site form or fetch can send
    if origin is not None:
        headers["Origin"] = origin
    return server.request("POST", "/api/prompt", {"prompt": image_graph(7, save=False)},
                          headers=headers)


def test_writes_from_another_origin_are_refused(server):
    for origin in ("http://evil.example", "null", f"http://localhost:{server.port}",
                   f"http://127.0.0.1:{server.port + 1}"):
        r = _post_prompt(server, origin)
        assert r.status == 403, (origin, r.status, r.body)
        assert r.json()["code"] == "cross_origin_refused"
    evil = {"Origin": "http://evil.example"}
    for method, path in (("POST", "/api/queue"), ("POST", "/api/interrupt"),
                         ("POST", "/api/userdata/x.json"), ("DELETE", "/api/userdata/x.json"),
                         ("POST", "/api/settings"), ("PUT", "/api/assets/00000000-0000-4000-8000-000000000000")):
        r = server.request(method, path, {"clear": True}, headers=evil)
        assert r.status == 403, (method, path, r.status)
    assert server.get("/api/queue").json() == {"queue_running": [], "queue_pending": []}


def test_same_origin_scripts_and_the_allowed_origin_pass(server):
    for origin in (None, f"http://127.0.0.1:{server.port}", ALLOWED, ALLOWED + "/"):
        r = _post_prompt(server, origin)
        assert r.status == 200, (origin, r.status, r.body)
    # Reads are not state changes: another origin may still GET (the browser keeps the answer
    # from the page without CORS headers).
    assert server.get("/api/queue", headers={"Origin": "http://evil.example"}).status == 200


def test_websocket_upgrade_from_another_origin_is_refused(server):
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(server.ws_url, origin="http://evil.example", timeout=10)
    assert refused.value.status_code == 403
    ws = websocket.create_connection(server.ws_url, origin=f"http://127.0.0.1:{server.port}",
                                     timeout=10)
    ws.close()
    ws = websocket.create_connection(server.ws_url, suppress_origin=True, timeout=10)
    ws.close()
