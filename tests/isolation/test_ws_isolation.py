"""Websocket events never cross workspaces, even when two tenants pick the same client id."""

from __future__ import annotations

import json
import random
import time

import pytest
import websocket

from tests.identity.tenants import new_tenant
from tests.server.wsutil import image_graph


def _connect(server, query: str, headers: list[str] | None = None, origin: str | None = None):
    return websocket.create_connection(f"{server.ws_url}?{query}", timeout=10,
                                       header=headers or [], origin=origin)


def _drain(ws, seconds: float) -> list:
    out, deadline = [], time.monotonic() + seconds
    ws.settimeout(0.2)
    while time.monotonic() < deadline:
        try:
            raw = ws.recv()
        except websocket.WebSocketTimeoutException:
            continue
        out.append(json.loads(raw) if isinstance(raw, str) else raw)
    return out


def test_a_websocket_never_sees_b_events(iso_server):
    a, b = new_tenant(iso_server), new_tenant(iso_server)
    ws_a = _connect(iso_server, f"clientId=same&token={a.key}")
    ws_b = _connect(iso_server, f"clientId=same&token={b.token}")
    try:
        r = a.post("/api/prompt", {"prompt": image_graph(random.randrange(1 << 24), save=False),
                                   "client_id": "same"})
        prompt_id = r.json()["prompt_id"]
        seen_a, deadline = [], time.monotonic() + 30
        while time.monotonic() < deadline:
            seen_a += _drain(ws_a, 0.3)
            if any(isinstance(m, dict) and m["type"] == "executing"
                   and m["data"].get("node") is None for m in seen_a):
                break
        assert any(isinstance(m, dict) and m.get("data", {}).get("prompt_id") == prompt_id
                   for m in seen_a)
        seen_b = _drain(ws_b, 0.5)
        assert all(isinstance(m, dict) and m["type"] == "status" for m in seen_b), seen_b
        assert all(m["data"]["status"]["exec_info"]["queue_remaining"] == 0 for m in seen_b)
        assert prompt_id.encode() not in b"".join(
            m if isinstance(m, bytes) else json.dumps(m).encode() for m in seen_b)
    finally:
        ws_a.close()
        ws_b.close()


def test_websocket_needs_a_credential(iso_server):
    with pytest.raises(websocket.WebSocketBadStatusException) as exc:
        _connect(iso_server, "clientId=x")
    assert exc.value.status_code == 401
    with pytest.raises(websocket.WebSocketBadStatusException) as exc:
        _connect(iso_server, "clientId=x&token=comfyui-" + "0" * 64)
    assert exc.value.status_code == 401


def test_websocket_cookie_from_another_origin_is_refused(iso_server):
    a = new_tenant(iso_server)
    r = a.post("/api/auth/session")
    cookie = r.headers["Set-Cookie"].split(";", 1)[0]
    with pytest.raises(websocket.WebSocketBadStatusException) as exc:
        _connect(iso_server, "clientId=x", [f"Cookie: {cookie}"], origin="https://evil.example")
    assert exc.value.status_code == 403
    ws = _connect(iso_server, "clientId=x", [f"Cookie: {cookie}"], origin=iso_server.url)
    ws.close()


def test_broadcast_events_of_a_job_without_client_stay_in_its_workspace(iso_server):
    a, b = new_tenant(iso_server), new_tenant(iso_server)
    ws_a = _connect(iso_server, f"clientId=a1&token={a.key}")
    ws_b = _connect(iso_server, f"clientId=b1&token={b.key}")
    try:
        r = a.post("/api/prompt", {"prompt": image_graph(random.randrange(1 << 24), save=False)})
        prompt_id = r.json()["prompt_id"]
        seen_a, deadline = [], time.monotonic() + 30
        while a.get(f"/api/jobs/{prompt_id}").json()["status"] != "completed":
            assert time.monotonic() < deadline
            seen_a += _drain(ws_a, 0.2)
        seen_a += _drain(ws_a, 0.3)
        assert any(isinstance(m, dict) and m["data"].get("prompt_id") == prompt_id for m in seen_a)
        seen_b = _drain(ws_b, 0.5)
        assert all(isinstance(m, dict) and m["type"] == "status" for m in seen_b), seen_b
        assert all(m["data"]["status"]["exec_info"]["queue_remaining"] == 0 for m in seen_b)
    finally:
        ws_a.close()
        ws_b.close()
