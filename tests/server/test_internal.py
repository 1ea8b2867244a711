"""/internal/* on a real server: logs, the live log stream over the websocket, folder paths,
and the file listings. None of them has an `/api` alias."""

from __future__ import annotations

import json
import os
import time
import uuid

import pytest
import websocket

from tests.conformance.spec import response_validator
from tests.harness import Server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One SQLite server: nothing here touches the database, so no PostgreSQL variant."""
    srv = Server(base_dir=tmp_path_factory.mktemp("internal")).start()
    yield srv
    srv.stop()


def _validate(method: str, spec_path: str, body) -> None:
    errors = list(response_validator(method, spec_path, 200).iter_errors(body))
    assert not errors, [e.message for e in errors[:5]]


def test_raw_logs_hold_start_up_lines(server):
    r = server.get("/internal/logs/raw")
    assert r.status == 200
    raw = r.json()
    _validate("get", "/internal/logs/raw", raw)
    assert raw["size"]["cols"] > 0 and raw["size"]["rows"] > 0
    assert raw["entries"], "the server logs at start-up; the buffer is empty"
    for entry in raw["entries"]:
        assert isinstance(entry["t"], float) and entry["m"].endswith("\n")
    assert time.time() - 3600 < raw["entries"][-1]["t"] <= time.time() + 1


def test_text_logs_are_the_same_entries(server):
    raw = server.get("/internal/logs/raw").json()["entries"]
    r = server.get("/internal/logs")
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain")
    text = r.body.decode()
    assert raw[0]["m"] in text
    assert " - " in text.splitlines()[0]


def test_no_api_alias(server):
    for path in ("/api/internal/logs", "/api/internal/logs/raw", "/api/internal/folder_paths"):
        assert server.get(path).status == 404


def test_subscribe_streams_logs_to_that_client_only(server):
    listener, bystander = f"logs-{uuid.uuid4().hex}", f"other-{uuid.uuid4().hex}"
    ws = websocket.create_connection(f"{server.ws_url}?clientId={listener}", timeout=10)
    other = websocket.create_connection(f"{server.ws_url}?clientId={bystander}", timeout=10)
    try:
        # A client is registered once greeted: subscribe only after its first `status`.
        for sock in (ws, other):
            _wait_for(sock, "status")
        r = server.request("PATCH", "/internal/logs/subscribe",
                           {"clientId": listener, "enabled": True})
        assert r.status == 200
        entries = _receive_logs(ws, until=listener)
        assert any(listener in e["m"] for e in entries)
        # The bystander never subscribed: it gets no `logs` message.
        other.settimeout(0.5)
        with pytest.raises(websocket.WebSocketTimeoutException):
            while True:
                msg = other.recv()
                if isinstance(msg, str):
                    assert json.loads(msg)["type"] != "logs"

        assert server.request("PATCH", "/internal/logs/subscribe",
                              {"clientId": listener, "enabled": False}).status == 200
        server.request("PATCH", "/internal/logs/subscribe",
                       {"clientId": bystander, "enabled": False})  # logs a line nobody gets
        ws.settimeout(0.5)
        with pytest.raises(websocket.WebSocketTimeoutException):
            while True:
                msg = ws.recv()
                if isinstance(msg, str):
                    data = json.loads(msg)
                    assert data["type"] != "logs" or all(
                        bystander not in e["m"] for e in data["data"]["entries"])
    finally:
        ws.close()
        other.close()


def _wait_for(ws, message_type: str, timeout: float = 10) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = ws.recv()
        if isinstance(msg, str) and json.loads(msg)["type"] == message_type:
            return json.loads(msg)
    raise AssertionError(f"no {message_type} message")


def _receive_logs(ws, *, until: str, timeout: float = 10) -> list[dict]:
    entries: list[dict] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = ws.recv()
        if not isinstance(msg, str):
            continue
        data = json.loads(msg)
        if data["type"] != "logs":
            continue
        assert set(data["data"]) == {"entries", "size"}
        entries += data["data"]["entries"]
        if any(until in e["m"] for e in entries):
            return entries
    raise AssertionError(f"no logs message mentioning {until}: {entries}")


@pytest.mark.parametrize("body", [
    b"not json", b"[1, 2]", b'{"enabled": true}', b'{"clientId": "x"}',
    b'{"clientId": "x", "enabled": "yes"}', b'{"clientId": 5, "enabled": true}',
])
def test_subscribe_refuses_bad_bodies(server, body):
    r = server.request("PATCH", "/internal/logs/subscribe", data=body,
                       headers={"Content-Type": "application/json"})
    assert r.status == 400
    assert set(r.json()) >= {"code", "message"}


def test_folder_paths(server):
    r = server.get("/internal/folder_paths")
    assert r.status == 200
    listing = r.json()
    _validate("get", "/internal/folder_paths", listing)
    paths, extensions = listing["checkpoints"]
    assert str(server.base_dir / "models" / "checkpoints") in paths
    assert ".safetensors" in extensions


def test_files_newest_first_and_hidden_skipped(server):
    output = server.base_dir / "output"
    output.mkdir(exist_ok=True)
    now = time.time()
    for age, name in ((30, "old.png"), (10, "mid.png"), (1, "new.png"), (0, ".hidden")):
        path = output / f"internal-{name}" if not name.startswith(".") else output / name
        path.write_bytes(b"x")
        os.utime(path, (now - age, now - age))
    (output / "internal-subfolder").mkdir(exist_ok=True)
    names = server.get("/internal/files/output").json()
    mine = [n for n in names if n.startswith("internal-")]
    assert mine == ["internal-new.png", "internal-mid.png", "internal-old.png"]
    assert ".hidden" not in names
    assert server.get("/internal/files/temp").status == 200


@pytest.mark.parametrize("kind", ["models", "..", "user", "%2e%2e"])
def test_files_refuses_other_folders(server, kind):
    r = server.get(f"/internal/files/{kind}")
    assert r.status in (400, 404)
