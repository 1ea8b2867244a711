"""Deeply nested JSON is a 400 with the usual error shape on every JSON route (sign-in
included) and on the websocket, never a 500 with a RecursionError traceback in the log."""

from __future__ import annotations

import json

import pytest
import websocket

from opencomfy.http.errors import MAX_JSON_DEPTH, ApiError, json_too_deep, parse_json
from tests.identity.fixtures import start_auth_server
from tests.identity.tenants import new_tenant

DEEP = b"[" * 20_000 + b"]" * 20_000  # under every route's size cap
DEEP_OBJECT = b'{"a":' * 5_000 + b"1" + b"}" * 5_000


def test_depth_scan_ignores_brackets_inside_strings_and_escapes():
    shallow = json.dumps({"text": "[" * 10_000 + '\\"{' * 500, "list": [[1, 2], {"k": "]]"}]}).encode()
    assert not json_too_deep(shallow)
    assert json.loads(shallow)  # still valid, still parsed
    just_inside = b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH
    assert not json_too_deep(just_inside) and json_too_deep(b"[" + just_inside + b"]")
    # An escaped backslash before a quote ends the string: the brackets after it count.
    tricky = b'["\\\\",' + b"[" * 300 + b"]" * 300 + b"]"
    assert json_too_deep(tricky)
    # An escaped quote does not end the string: the brackets after it are text.
    hidden = b'["\\"' + b"[" * 300 + b'"]'
    assert not json_too_deep(hidden)
    with pytest.raises(ApiError) as err:
        parse_json(DEEP)
    assert err.value.status == 400 and err.value.code == "invalid_json"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = start_auth_server(tmp_path_factory.mktemp("deep-json"), "sqlite")
    yield srv
    srv.stop()


def _no_traceback(server) -> None:
    log = server.log()
    assert "RecursionError" not in log and "Traceback" not in log, log


def test_deep_json_is_a_400_on_every_json_route(server):
    tenant = new_tenant(server)
    routes = [("POST", "/api/prompt"), ("POST", "/prompt"), ("POST", "/api/queue"),
              ("POST", "/api/history"), ("POST", "/api/interrupt"), ("POST", "/api/jobs/cancel"),
              ("POST", "/api/settings"), ("POST", "/api/settings/Comfy.X"),
              ("PUT", "/api/assets/00000000-0000-4000-8000-000000000000"),
              ("POST", "/api/assets/from-hash"), ("POST", "/api/secrets"), ("POST", "/api/feedback"),
              ("POST", "/api/workspaces")]  # (account routes take the identity token)
    for method, path in routes:
        kind = "id" if path == "/api/workspaces" else "key"
        for body in (DEEP, DEEP_OBJECT):
            r = tenant.request(method, path, data=body, kind=kind,
                               headers={"Content-Type": "application/json"})
            assert r.status == 400, (method, path, r.status, r.body[:300])
            error = r.json()
            if path.endswith("prompt"):  # ComfyUI's /prompt error shape
                assert error["error"]["type"] == "invalid_json", error
            else:
                assert {"code", "message"} <= set(error), (path, error)
    # Sign-in reads its JSON before any credential exists.
    r = server.post("/login", data=DEEP, headers={"Content-Type": "application/json"})
    assert r.status == 400 and r.json()["code"] == "invalid_json", r.body[:300]
    # JSON inside a query parameter goes through the same parser.
    deep_filter = "[" * 3000 + "]" * 3000
    r = tenant.get(f"/api/assets?metadata_filter={deep_filter}")
    assert r.status == 400, r.body[:300]
    _no_traceback(server)


def test_deep_websocket_message_is_ignored(server):
    tenant = new_tenant(server)
    ws = websocket.create_connection(server.ws_url + f"?token={tenant.key}", timeout=10)
    try:
        assert json.loads(ws.recv())["type"] == "status"
        ws.send(DEEP.decode())
        ws.send(json.dumps({"type": "feature_flags", "data": {}}))
        ws.ping()
    finally:
        ws.close()
    assert server.get("/health").status == 200
    _no_traceback(server)
