"""The worker inside a real server: a node that raises, targeted interrupts, /free."""

from __future__ import annotations

import random
import time

import pytest

from tests.server.wsutil import (Client, database_url, image_graph, json_events, new_id,
                                 queue_prompt, server_with_pack)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def server(request, tmp_path_factory):
    srv = server_with_pack(tmp_path_factory.mktemp(f"worker-{request.param}"),
                           database_url(request.param)).start()
    yield srv
    srv.stop()


def raising_graph(message: str) -> dict:
    graph = image_graph(random.randrange(1 << 24))
    graph["6"] = {"class_type": "TestRaise", "inputs": {"image": ["1", 0], "message": message}}
    graph["2"]["inputs"]["image"] = ["6", 0]
    return graph


def wait_status(server, pid: str, wanted: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while server.get(f"/api/jobs/{pid}").json().get("status") != wanted:
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.05)


def test_a_node_that_raises_fails_its_prompt_and_the_worker_goes_on(server):
    cid = new_id()
    c = Client(server, cid)
    c.recv()
    bad = queue_prompt(server, raising_graph("kaput"), client_id=cid)
    good = queue_prompt(server, image_graph(random.randrange(1 << 24)), client_id=cid)
    bad_events = json_events(c.until_done(bad), bad)
    good_events = json_events(c.until_done(good), good)
    c.close()
    error = next(e["data"] for e in bad_events if e["type"] == "execution_error")
    assert error["node_id"] == "6" and error["node_type"] == "TestRaise"
    assert error["exception_message"] == "kaput" and error["exception_type"].endswith("ValueError")
    entry = server.get(f"/api/history/{bad}").json()[bad]
    assert entry["status"]["status_str"] == "error"
    assert server.get(f"/api/jobs/{bad}").json()["status"] == "failed"
    assert any(e["type"] == "execution_success" for e in good_events)


def test_a_node_calling_sys_exit_fails_its_prompt_and_the_worker_goes_on(server):
    bad = queue_prompt(server, raising_graph("SystemExit"))
    good = queue_prompt(server, image_graph(random.randrange(1 << 24)))
    server.wait_for_job(bad)
    server.wait_for_job(good)
    assert server.get(f"/api/jobs/{bad}").json()["status"] == "failed"
    assert server.get(f"/api/jobs/{good}").json()["status"] == "completed"
    assert server.get("/health").status == 200


def test_interrupt_with_a_prompt_id_stops_only_that_prompt(server):
    cid = new_id()
    c = Client(server, cid)
    c.recv()
    slow = queue_prompt(server, image_graph(random.randrange(1 << 24), slow=30), client_id=cid)
    after = queue_prompt(server, image_graph(random.randrange(1 << 24)), client_id=cid)
    wait_status(server, slow, "in_progress")
    assert server.post("/api/interrupt", {"prompt_id": after}).status == 200
    time.sleep(0.3)
    assert server.get(f"/api/jobs/{slow}").json()["status"] == "in_progress"
    started = time.monotonic()
    assert server.post("/api/interrupt", {"prompt_id": slow}).status == 200
    slow_events = json_events(c.until_done(slow), slow)
    assert time.monotonic() - started < 5
    interrupted = next(e["data"] for e in slow_events if e["type"] == "execution_interrupted")
    assert interrupted["node_id"] == "4"
    assert server.get(f"/api/jobs/{slow}").json()["status"] == "cancelled"
    assert server.get(f"/api/history/{slow}").json()[slow]["status"]["status_str"] == "error"
    c.until_done(after)
    c.close()
    assert server.get(f"/api/jobs/{after}").json()["status"] == "completed"


def test_free_is_accepted_while_running_and_the_queue_goes_on(server):
    slow = queue_prompt(server, image_graph(random.randrange(1 << 24), slow=0.5))
    wait_status(server, slow, "in_progress")
    assert server.post("/api/free", {"unload_models": True, "free_memory": True}).status == 200
    wait_status(server, slow, "completed")
    # Freed caches: the same prompt runs every node again rather than hitting the cache.
    again = queue_prompt(server, server.get(f"/api/history/{slow}").json()[slow]["prompt"][2])
    server.wait_for_job(again)
    entry = server.get(f"/api/history/{again}").json()[again]
    cached = next(d for name, d in entry["status"]["messages"] if name == "execution_cached")
    assert cached["nodes"] == []


def test_a_pack_route_interrupting_stops_the_running_job(server):
    slow = queue_prompt(server, image_graph(random.randrange(1 << 24), slow=30))
    wait_status(server, slow, "in_progress")
    assert server.post("/event_pack/stop", {}).json() == {"stopped": True}
    wait_status(server, slow, "cancelled", timeout=10)
