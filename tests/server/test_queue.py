"""/api/queue, /api/interrupt and /api/free on a real server (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest

from tests.server.queue_helpers import (Blocker, database_url, queue, server_with_pack,
                                        slow_graph, wait_idle, wait_status)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def server(request, tmp_path_factory):
    srv = server_with_pack(tmp_path_factory.mktemp(f"queue-{request.param}"),
                           database_url(request.param)).start()
    yield srv
    srv.stop()


def test_queue_lists_running_and_pending_as_comfyui_tuples(server):
    with Blocker(server) as blocker:
        waiting = [queue(server, client_id="c1") for _ in range(3)]
        for path in ("/queue", "/api/queue"):
            body = server.get(path).json()
            assert set(body) == {"queue_running", "queue_pending"}
            (running,) = body["queue_running"]
            assert running[1] == blocker.prompt_id and len(running) == 5
            assert [item[1] for item in body["queue_pending"]] == waiting
            number, pid, prompt, extra, outputs = body["queue_pending"][0]
            assert isinstance(number, int) and prompt["1"]["class_type"] == "EmptyImage"
            assert extra["client_id"] == "c1" and outputs == ["3"]
        assert server.get("/api/prompt").json() == {"exec_info": {"queue_remaining": 4}}


def test_delete_and_clear_take_pending_jobs_off_the_queue(server):
    with Blocker(server) as blocker:
        a, b, c = (queue(server) for _ in range(3))
        r = server.post("/api/queue", {"delete": [b, blocker.prompt_id]})
        assert r.status == 200 and r.json() == {"cleared": False, "deleted": [b]}
        assert [i[1] for i in server.get("/api/queue").json()["queue_pending"]] == [a, c]
        r = server.post("/api/queue", {"clear": True})
        assert r.status == 200 and sorted(r.json()["deleted"]) == sorted([a, c])
        queue_now = server.get("/queue").json()
        assert queue_now["queue_pending"] == [] and len(queue_now["queue_running"]) == 1
        assert server.get(f"/api/jobs/{b}").json()["status"] == "cancelled"
    # Deleted jobs never run; the running one was untouched by clear, then interrupted.
    assert server.get(f"/api/jobs/{a}").json()["status"] == "cancelled"


def test_interrupt_with_prompt_id_stops_only_that_job(server):
    with Blocker(server) as blocker:
        other = queue(server)
        assert server.post("/api/interrupt", {"prompt_id": other}).status == 200  # not running
        assert server.get(f"/api/jobs/{blocker.prompt_id}").json()["status"] == "in_progress"
        assert server.post("/interrupt", {"prompt_id": blocker.prompt_id}).status == 200
        wait_status(server, blocker.prompt_id, "cancelled")
        wait_status(server, other, "completed")


def test_interrupt_without_body_stops_the_running_job(server):
    pid = queue(server, slow_graph(60))
    wait_status(server, pid, "in_progress")
    assert server.request("POST", "/api/interrupt").status == 200
    wait_status(server, pid, "cancelled")
    entry = server.get(f"/api/history/{pid}").json()[pid]
    assert entry["status"]["status_str"] == "error"
    assert entry["status"]["messages"][-1][0] == "execution_interrupted"


def test_free_is_accepted(server):
    assert server.post("/api/free", {"unload_models": True, "free_memory": True}).status == 200
    assert server.post("/free", {}).status == 200
    wait_idle(server)


@pytest.mark.parametrize("path,body", [
    ("/api/queue", b"{bad"),
    ("/api/queue", b"[1]"),
    ("/api/queue", b'{"delete": "abc"}'),
    ("/api/queue", b'{"clear": "yes"}'),
    ("/api/interrupt", b"{bad"),
    ("/api/interrupt", b'{"prompt_id": 5}'),
    ("/api/free", b'{"unload_models": "yes"}'),
    ("/api/free", b"[]"),
])
def test_bad_bodies_get_400_with_error_shape(server, path, body):
    r = server.request("POST", path, data=body, headers={"Content-Type": "application/json"})
    assert r.status == 400
    assert {"code", "message"} <= set(r.json())
