"""/api/history, /api/history/{id}, POST /api/history and /api/history_v2 on a real server."""

from __future__ import annotations

import pytest

from tests.server.queue_helpers import (database_url, graph, new_id, queue, server_with_pack,
                                        wait_idle)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def server(request, tmp_path_factory):
    srv = server_with_pack(tmp_path_factory.mktemp(f"history-{request.param}"),
                           database_url(request.param)).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def finished(server):
    """Six finished jobs, run one after another (history order = completion order)."""
    server.post("/api/history", {"clear": True})
    ids = []
    for _ in range(6):
        ids.append(queue(server, graph(save=True, prefix="hist")))
        server.wait_for_job(ids[-1])
    return ids


def keys(server, query: str = "") -> list[str]:
    r = server.get("/api/history" + query)
    assert r.status == 200
    return list(r.json())


@pytest.mark.parametrize("query,window", [
    ("", slice(None)),
    ("?max_items=2", slice(4, 6)),             # newest two, oldest of them first
    ("?max_items=2&offset=-1", slice(4, 6)),
    ("?max_items=10", slice(None)),
    ("?max_items=2&offset=1", slice(1, 3)),
    ("?offset=3", slice(3, None)),
    ("?max_items=3&offset=5", slice(5, 6)),
    ("?max_items=3&offset=6", slice(6, 6)),
    ("?max_items=0", slice(0, 0)),
    ("?max_items=0&offset=2", slice(2, 3)),    # ComfyUI adds one item before counting
])
def test_history_windows_are_comfyuis(server, finished, query, window):
    assert keys(server, query) == finished[window]
    assert keys(server, query.replace("/api", "")) == finished[window]


def test_history_entry_shape(server, finished):
    pid = finished[0]
    for path in (f"/history/{pid}", f"/api/history/{pid}"):
        body = server.get(path).json()
        assert list(body) == [pid]
        entry = body[pid]
        assert set(entry) == {"prompt", "outputs", "status", "meta"}
        assert len(entry["prompt"]) == 5 and entry["prompt"][1] == pid
        image = entry["outputs"]["3"]["images"][0]
        assert image["type"] == "output" and image["filename"].startswith("hist_")
        assert entry["status"]["status_str"] == "success" and entry["status"]["completed"] is True
        events = [m[0] for m in entry["status"]["messages"]]
        assert events[0] == "execution_start" and events[-1] == "execution_success"
        assert entry["meta"]["3"]["node_id"] == "3"


def test_unknown_or_queued_ids_give_an_empty_object(server, finished):
    assert server.get(f"/api/history/{new_id()}").json() == {}
    assert server.get("/api/history/not-a-uuid").json() == {}


def test_history_v2_is_newest_first_and_lightweight(server, finished):
    body = server.get("/api/history_v2?max_items=2&offset=1").json()
    entries = body["history"]
    assert [e["prompt_id"] for e in entries] == list(reversed(finished))[1:3]
    entry = entries[0]
    assert entry["status"]["status_str"] == "success"
    assert isinstance(entry["create_time"], int) and "prompt" not in entry["prompt"]
    detail = server.get(f"/api/history_v2/{finished[0]}").json()[finished[0]]
    assert detail["prompt"]["prompt_id"] == finished[0]
    assert detail["prompt"]["prompt"]["1"]["class_type"] == "EmptyImage"
    assert detail["prompt"]["outputs_to_execute"] == ["3"]
    r = server.get(f"/api/history_v2/{new_id()}")
    assert r.status == 404 and {"code", "message"} <= set(r.json())


@pytest.mark.parametrize("query", ["?max_items=abc", "?offset=1.5", "?max_items=&offset=x"])
def test_bad_windows_are_400(server, query):
    r = server.get("/api/history" + query)
    assert r.status == 400 and {"code", "message"} <= set(r.json())
    assert server.get("/api/history_v2" + query).status == 400


def test_history_and_numbering_survive_a_restart(server, finished):
    before = server.get("/api/history").json()
    server.stop()
    server.start()
    assert server.get("/api/history").json() == before
    last_number = max(entry["prompt"][0] for entry in before.values())
    pid = queue(server)
    entry = server.wait_for_job(pid)
    assert entry["prompt"][0] > last_number  # the queue counter continues
    server.post("/api/history", {"delete": [pid]})


def test_delete_and_clear_history(server, finished):
    assert server.post("/api/history", {"delete": [finished[0]]}).status == 200
    assert finished[0] not in keys(server)
    assert server.get(f"/api/jobs/{finished[0]}").status == 404
    assert server.post("/history", {"clear": True}).status == 200
    assert keys(server) == []
    assert server.get("/api/history_v2").json() == {"history": []}
    for body in (b"[1]", b"{bad", b'{"delete": 3}', b'{"clear": 1}'):
        r = server.request("POST", "/api/history", data=body,
                           headers={"Content-Type": "application/json"})
        assert r.status == 400
    wait_idle(server)


def test_history_v2_negative_windows_are_clamped_not_refused(server):
    """history_v2's parameters are plain integers in the spec (200 only): a negative offset is
    0 and a negative max_items is an empty page."""
    assert server.get("/api/history_v2?offset=-5").json() == server.get("/api/history_v2?offset=0").json()
    r = server.get("/api/history_v2?max_items=-1")
    assert r.status == 200 and r.json() == {"history": []}
