"""/api/jobs, /api/jobs/{id}, cancel, and the deprecated /api/job/{id}/status on a real server."""

from __future__ import annotations

import random

import pytest

from tests.server.queue_helpers import (Blocker, database_url, graph, new_id, queue,
                                        server_with_pack, slow_graph, wait_idle, wait_status)
from tests.server.wsutil import image_graph


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def server(request, tmp_path_factory):
    srv = server_with_pack(tmp_path_factory.mktemp(f"jobs-{request.param}"),
                           database_url(request.param)).start()
    yield srv
    srv.stop()


def failing_graph() -> dict:
    prompt = image_graph(random.randrange(1 << 24), save=False)
    prompt["6"] = {"class_type": "TestRaise", "inputs": {"image": ["1", 0], "message": "nope"}}
    prompt["2"]["inputs"]["image"] = ["6", 0]
    return prompt


@pytest.fixture(scope="module")
def history(server):
    """Three saved images, one preview, one failure, all finished; returns their ids."""
    wf = {"extra_pnginfo": {"workflow": {"id": "wf-jobs"}}}
    saved = [queue(server, graph(save=True, prefix="jobs"), extra_data=wf) for _ in range(3)]
    preview = queue(server, graph())
    failed = queue(server, failing_graph())
    wait_idle(server)
    return {"saved": saved, "preview": preview, "failed": failed}


def test_list_entries_and_pagination(server, history):
    body = server.get("/api/jobs?limit=2").json()
    assert body["pagination"] == {"offset": 0, "limit": 2, "total": 5, "has_more": True}
    assert [j["id"] for j in body["jobs"]] == [history["failed"], history["preview"]]
    body = server.get("/jobs?limit=2&offset=4").json()
    assert body["pagination"]["has_more"] is False
    assert [j["id"] for j in body["jobs"]] == [history["saved"][0]]
    asc = server.get("/api/jobs?sort_order=asc&limit=1000").json()["jobs"]
    assert [j["id"] for j in asc] == [*history["saved"], history["preview"], history["failed"]]
    job = asc[0]
    assert job["status"] == "completed" and job["workflow_id"] == "wf-jobs"
    assert job["outputs_count"] == 1
    assert job["preview_output"]["type"] == "output" and job["preview_output"]["nodeId"] == "3"
    assert job["execution_end_time"] >= job["execution_start_time"] >= job["create_time"] - 1000


def test_filters(server, history):
    def ids(query: str) -> set[str]:
        r = server.get("/api/jobs" + query)
        assert r.status == 200, r.body
        return {j["id"] for j in r.json()["jobs"]}

    assert ids("?status=failed") == {history["failed"]}
    assert ids("?status=completed,failed") == {*history["saved"], history["preview"], history["failed"]}
    assert ids("?status=pending,in_progress") == set()
    assert ids("?workflow_id=wf-jobs") == set(history["saved"])
    assert ids("?output_type=image") == {*history["saved"], history["preview"]}
    assert ids("?output_type=video") == set()
    durations = server.get("/api/jobs?sort_by=execution_time&sort_order=desc").json()["jobs"]
    spans = [j["execution_end_time"] - j["execution_start_time"] for j in durations]
    assert spans == sorted(spans, reverse=True)
    assert server.get("/api/jobs?sort_by=execution_duration").status == 200  # ComfyUI's name


def test_failed_job_carries_its_error(server, history):
    job = server.get(f"/api/jobs/{history['failed']}").json()
    assert job["status"] == "failed"
    err = job["execution_error"]
    assert err["node_id"] == "6" and err["node_type"] == "TestRaise"
    assert err["exception_message"] == "nope" and isinstance(err["traceback"], list)
    status = server.get(f"/api/job/{history['failed']}/status").json()
    assert status["status"] == "error" and "nope" in status["error_message"]


def test_detail_has_outputs_workflow_and_timeline(server, history):
    pid = history["saved"][0]
    job = server.get(f"/api/jobs/{pid}").json()
    assert job["id"] == pid and isinstance(job["update_time"], int)
    assert job["outputs"]["3"]["images"][0]["type"] == "output"
    assert job["workflow"]["prompt"]["3"]["class_type"] == "SaveImage"
    assert job["workflow"]["extra_data"]["extra_pnginfo"]["workflow"]["id"] == "wf-jobs"
    assert job["execution_status"]["status_str"] == "success"
    status = server.get(f"/job/{pid}/status").json()
    assert status["id"] == pid and status["status"] == "completed"
    assert status["created_at"].endswith("Z") and status["error_message"] is None


def test_cancel_pending_and_running_idempotently(server):
    with Blocker(server) as blocker:
        waiting = queue(server)
        pending_status = server.get(f"/api/job/{waiting}/status").json()
        assert pending_status["status"] == "pending"
        assert server.get(f"/api/jobs/{waiting}").json()["status"] == "pending"
        r = server.post(f"/api/jobs/{waiting}/cancel")
        assert r.status == 200 and r.json() == {"cancelled": True}
        assert server.post(f"/api/jobs/{waiting}/cancel").json() == {"cancelled": False}
        assert server.post(f"/jobs/{blocker.prompt_id}/cancel").json() == {"cancelled": True}
        wait_status(server, blocker.prompt_id, "cancelled")
        assert server.post(f"/api/jobs/{blocker.prompt_id}/cancel").json() == {"cancelled": False}
    assert server.get(f"/api/jobs/{waiting}").json()["status"] == "cancelled"


def test_batch_cancel(server):
    with Blocker(server):
        a, b = queue(server), queue(server)
        r = server.post("/api/jobs/cancel", {"job_ids": [a, b, new_id()]})
        assert r.status == 200 and r.json()["cancelled"] is True
        assert sorted(r.json()["job_ids"]) == sorted([a, b])
        assert server.post("/api/jobs/cancel", {"job_ids": "x"}).status == 400


def test_running_job_is_in_progress(server):
    pid = queue(server, slow_graph(60))
    wait_status(server, pid, "in_progress")
    job = server.get(f"/api/jobs/{pid}").json()
    assert "outputs" not in job and "execution_end_time" not in job
    assert server.get(f"/api/job/{pid}/status").json()["status"] == "in_progress"
    assert server.get("/api/jobs?status=in_progress").json()["jobs"][0]["id"] == pid
    server.post(f"/api/jobs/{pid}/cancel")
    wait_status(server, pid, "cancelled")


def test_missing_and_malformed_ids(server):
    missing = new_id()
    for path in (f"/api/jobs/{missing}", f"/api/job/{missing}/status", "/api/jobs/not-a-uuid"):
        r = server.get(path)
        assert r.status == 404 and {"code", "message"} <= set(r.json())
    r = server.post(f"/api/jobs/{missing}/cancel")
    assert r.status == 404
    r = server.post("/api/jobs/not-a-uuid/cancel")
    assert r.status == 400 and "message" in r.json()


@pytest.mark.parametrize("query", ["?limit=0", "?limit=1001", "?limit=x", "?offset=-1",
                                   "?status=done", "?sort_by=name", "?sort_order=up",
                                   "?output_type=text"])
def test_bad_queries_are_400(server, query):
    r = server.get("/api/jobs" + query)
    assert r.status == 400 and {"code", "message"} <= set(r.json())


def test_limit_up_to_1000(server):
    body = server.get("/api/jobs?limit=1000").json()
    assert body["pagination"]["limit"] == 1000 and body["pagination"]["has_more"] is False
