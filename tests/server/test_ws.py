"""/ws against a real server: greeting, feature flags, event order, routing, previews,
reconnects, and a stalled socket that must not hold anyone else up."""

from __future__ import annotations

import json
import random
import socket
import struct
import time

import pytest
import websocket

from tests.server.wsutil import (Client, binary_type, database_url, image_graph, is_final,
                                 json_events, new_id, queue_prompt, server_with_pack)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def server(request, tmp_path_factory):
    srv = server_with_pack(tmp_path_factory.mktemp(f"ws-{request.param}"),
                           database_url(request.param)).start()
    yield srv
    srv.stop()


def color() -> int:
    return random.randrange(1 << 24)


def test_connect_without_client_id_gets_a_generated_sid(server):
    c = Client(server)
    first = c.recv()
    c.close()
    assert first["type"] == "status"
    sid = first["data"]["sid"]
    assert len(sid) == 32 and int(sid, 16) >= 0
    assert isinstance(first["data"]["status"]["exec_info"]["queue_remaining"], int)


def test_the_api_alias_and_a_too_long_client_id(server):
    ws = websocket.create_connection(server.ws_url.replace("/ws", "/api/ws?clientId=alias"),
                                     timeout=20)
    assert json.loads(ws.recv())["data"]["sid"] == "alias"
    ws.close()
    with pytest.raises(websocket.WebSocketBadStatusException) as bad:
        websocket.create_connection(server.ws_url + "?clientId=" + "x" * 300, timeout=20)
    assert bad.value.status_code == 400


def test_client_id_is_kept_and_feature_flags_are_answered(server):
    c = Client(server, "my-client", flags={"supports_preview_metadata": True})
    greeting, flags = c.recv(), c.recv()
    c.close()
    assert greeting["data"]["sid"] == "my-client"
    assert flags["type"] == "feature_flags"
    assert flags["data"] == server.get("/api/features").json()
    assert flags["data"]["supports_preview_metadata"] is True
    assert flags["data"]["max_upload_size"] == 100 * 1024 * 1024


def test_one_prompt_sends_comfyuis_events_in_order_and_history_before_the_end(server):
    cid = new_id()
    c = Client(server, cid)
    c.recv()  # greeting
    pid = queue_prompt(server, image_graph(color()), client_id=cid)
    events = json_events(c.until_done(pid), pid)
    # History is stored before the final `executing`: it must be there right now.
    entry = server.get(f"/api/history/{pid}").json()[pid]
    c.close()
    types = [e["type"] for e in events if e["type"] not in ("progress", "progress_state")]
    start = types.index("execution_start")
    assert "status" in types[:start]
    assert types[start:start + 2] == ["execution_start", "execution_cached"]
    running = [e["data"]["node"] for e in events if e["type"] == "executing"]
    assert running == ["1", "2", "3", None]
    success = types.index("execution_success")
    assert types[success:] == ["execution_success", "status", "executing"]
    executed = next(e["data"] for e in events if e["type"] == "executed")
    assert executed["node"] == "3" and executed["prompt_id"] == pid
    assert executed["output"]["images"][0]["type"] == "output"
    assert entry["status"]["status_str"] == "success" and entry["status"]["completed"] is True
    assert entry["outputs"]["3"] == executed["output"]
    assert events[-1]["data"] == {"node": None, "prompt_id": pid}


def test_events_go_only_to_the_client_that_queued_the_prompt(server):
    a, b = Client(server, new_id()), Client(server, new_id())
    a.recv(), b.recv()
    pid_a = queue_prompt(server, image_graph(color()), client_id=a_id(a))
    a.until_done(pid_a)
    pid_b = queue_prompt(server, image_graph(color()), client_id=a_id(b))
    b.until_done(pid_b)
    a.close(), b.close()
    leaked = [m for m in b.messages if isinstance(m, dict) and m["data"].get("prompt_id") == pid_a]
    assert leaked == []
    assert [m for m in b.messages if isinstance(m, dict) and m["type"] == "executed"]


def a_id(client: Client) -> str:
    return client.messages[0]["data"]["sid"]


def test_a_prompt_without_client_broadcasts_progress_and_previews_only(server):
    features = server.get("/api/features").json()
    new = Client(server, new_id(), flags={"supports_preview_metadata": True,
                                          "supports_progress_text_metadata": True})
    old = Client(server, new_id())
    new.recv(), new.recv(), old.recv()
    pid = queue_prompt(server, image_graph(color(), burst=(2, 0), save=False))
    server.wait_for_job(pid)
    # A prompt of our own afterwards: once it is done, every earlier frame has arrived.
    for c in (new, old):
        c.until_done(queue_prompt(server, image_graph(color()), client_id=a_id(c)))
    new.close(), old.close()
    for c in (new, old):
        mine = [m for m in c.messages if isinstance(m, dict) and m["data"].get("prompt_id") == pid]
        assert {m["type"] for m in mine} <= {"progress", "progress_state", "execution_interrupted"}
        progress = [m["data"] for m in mine if m["type"] == "progress"]
        assert [(p["value"], p["max"], p["node"]) for p in progress] == [(1, 2, "5"), (2, 2, "5")]
        assert any(m["type"] == "progress_state" for m in mine)
    # Previews: type 4 with metadata for the client that negotiated it, type 1 otherwise.
    new_previews = [f for f in new.messages if isinstance(f, bytes) and binary_type(f) == 4]
    old_previews = [f for f in old.messages if isinstance(f, bytes) and binary_type(f) == 1]
    assert len(new_previews) == 2 and len(old_previews) == 2
    (meta_len,) = struct.unpack(">I", new_previews[0][4:8])
    meta = json.loads(new_previews[0][8:8 + meta_len])
    assert meta["node_id"] == "5" and meta["prompt_id"] == pid
    assert meta["image_type"] == "image/png"
    assert new_previews[0][8 + meta_len:].startswith(b"\x89PNG")
    assert struct.unpack(">I", old_previews[0][4:8]) == (2,)
    assert old_previews[0][8:].startswith(b"\x89PNG")
    assert not [f for f in new.messages if isinstance(f, bytes) and binary_type(f) == 1]
    # Progress text (type 3): node id and text, the prompt id first when both sides agree.
    new_text = [f for f in new.messages if isinstance(f, bytes) and binary_type(f) == 3]
    old_text = [f for f in old.messages if isinstance(f, bytes) and binary_type(f) == 3]
    assert old_text[0] == struct.pack(">II", 3, 1) + b"5" + b"step 1/2"
    if features.get("supports_progress_text_metadata"):
        pid_b = pid.encode()
        assert new_text[0] == (struct.pack(">II", 3, len(pid_b)) + pid_b
                               + struct.pack(">I", 1) + b"5step 1/2")
    else:
        assert new_text[0] == old_text[0]


def test_previews_of_a_clients_prompt_reach_only_that_client(server):
    mine = Client(server, new_id(), flags={"supports_preview_metadata": True})
    other = Client(server, new_id(), flags={"supports_preview_metadata": True})
    mine.recv(), mine.recv(), other.recv(), other.recv()
    pid = queue_prompt(server, image_graph(color(), burst=(3, 0), save=False), client_id=a_id(mine))
    events = mine.until_done(pid)
    other.until_done(queue_prompt(server, image_graph(color()), client_id=a_id(other)))
    mine.close(), other.close()
    assert len([f for f in events if isinstance(f, bytes) and binary_type(f) == 4]) == 3
    assert not [f for f in other.messages if isinstance(f, bytes)]
    progress = [m["data"]["value"] for m in json_events(events, pid) if m["type"] == "progress"]
    assert progress == [1, 2, 3]


def test_reconnecting_with_the_same_id_replaces_the_old_socket(server):
    cid = new_id()
    first = Client(server, cid)
    first.recv()
    second = Client(server, cid)
    second.recv()
    with pytest.raises(Exception):
        first.ws.settimeout(5)
        first.recv()  # the server closed the old socket
    pid = queue_prompt(server, image_graph(color()), client_id=cid)
    assert is_final(second.until_done(pid)[-1], pid)
    second.close()


def test_a_client_connecting_mid_run_learns_the_running_node(server):
    cid = new_id()
    pid = queue_prompt(server, image_graph(color(), slow=3.0), client_id=cid)
    deadline = time.monotonic() + 20
    while server.get(f"/api/jobs/{pid}").json().get("status") != "in_progress":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.3)  # node 4 (the slow one) is running now
    c = Client(server, cid)
    greeting, running = c.recv(), c.recv()
    assert greeting["type"] == "status"
    assert running["type"] == "executing" and running["data"]["node"] == "4"
    server.post("/api/interrupt", {"prompt_id": pid})  # no need to wait for the slow node
    assert any(m["type"] == "execution_interrupted" for m in json_events(c.until_done(pid), pid))
    c.close()


def raw_websocket(server, client_id: str) -> socket.socket:
    """A websocket handshake on a socket with a tiny receive buffer, never read again."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    sock.sendall((f"GET /ws?clientId={client_id} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                  "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    return sock


def test_a_stalled_socket_never_delays_another_clients_events(server):
    stalled_id = new_id()
    stalled = raw_websocket(server, stalled_id)
    try:
        fine = Client(server, new_id(), flags={"supports_preview_metadata": True})
        fine.recv(), fine.recv()
        started = time.monotonic()
        # About 12 MB of previews broadcast to both sockets: far more than the stalled one's
        # kernel buffers and its queue on the server can hold.
        burst = queue_prompt(server, image_graph(color(), burst=(100, 128), save=False))
        server.wait_for_job(burst, timeout=60)
        pid = queue_prompt(server, image_graph(color()), client_id=a_id(fine))
        events = fine.until_done(pid, timeout=60)
        elapsed = time.monotonic() - started
        fine.close()
        previews = [f for f in fine.messages if isinstance(f, bytes) and binary_type(f) == 4]
        assert previews, "the healthy client received the broadcast previews"
        assert [e for e in json_events(events, pid) if e["type"] == "executed"]
        assert elapsed < 30
        assert server.get("/health").status == 200
        # The stall really happened: the server shed the stalled client's previews.
        assert f"websocket client {stalled_id} is falling behind" in server.log()
    finally:
        stalled.close()


def pong(msg) -> bool:
    return isinstance(msg, dict) and msg["type"] == "event_pack.pong"


def test_custom_nodes_send_sync_outside_a_run_reaches_the_sockets(server):
    a, b = Client(server, new_id()), Client(server, new_id())
    a.recv(), b.recv()
    assert server.post("/event_pack/ping", {"n": 1, "sid": a_id(a)}).json() == {"sent": True}
    assert server.post("/event_pack/ping", {"n": 2}).status == 200
    assert a.until(pong)[-1]["data"] == {"n": 1}
    assert a.until(pong)[-1]["data"] == {"n": 2}
    assert b.until(pong)[-1]["data"] == {"n": 2}  # the broadcast; n=1 was a's alone
    assert not [m for m in b.messages if pong(m) and m["data"]["n"] == 1]
    a.close(), b.close()
