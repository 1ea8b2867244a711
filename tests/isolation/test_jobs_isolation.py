"""Jobs, queue and history between workspaces: B never sees, cancels or interrupts A's jobs,
and gets 404 on each of A's job ids."""

from __future__ import annotations

import random
import time

from tests.identity.tenants import Tenant, new_tenant
from tests.server.wsutil import image_graph


def _queue(t: Tenant, graph: dict) -> str:
    r = t.post("/api/prompt", {"prompt": graph})
    assert r.status == 200, r.body
    return r.json()["prompt_id"]


def _status(t: Tenant, prompt_id: str) -> str | None:
    r = t.get(f"/api/jobs/{prompt_id}")
    return r.json()["status"] if r.status == 200 else None


def _wait(t: Tenant, prompt_id: str, *wanted: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while (status := _status(t, prompt_id)) not in wanted:
        assert time.monotonic() < deadline, (prompt_id, status, t.server.log())
        time.sleep(0.03)
    return status


def test_b_gets_404_on_a_finished_job(iso_server):
    a, b = new_tenant(iso_server), new_tenant(iso_server)
    done = _queue(a, image_graph(random.randrange(1 << 24), prefix="isoA", save=True))
    _wait(a, done, "completed")
    assert done in a.get("/api/history").json()
    assert b.get(f"/api/jobs/{done}").status == 404
    assert b.post(f"/api/jobs/{done}/cancel").status == 404
    assert b.get(f"/api/history/{done}").json() == {}
    assert done not in b.get("/api/history").json()
    assert all(j["id"] != done for j in b.get("/api/jobs").json()["jobs"])
    # B cannot delete A's history either.
    assert b.post("/api/history", {"delete": [done]}).status == 200
    assert b.post("/api/history", {"clear": True}).status == 200
    assert done in a.get(f"/api/history/{done}").json()


def test_b_does_not_see_cancel_or_interrupt_a_running_and_pending_jobs(iso_server):
    a, b = new_tenant(iso_server), new_tenant(iso_server)
    running = _queue(a, image_graph(random.randrange(1 << 24), slow=30, save=False))
    _wait(a, running, "in_progress")
    pending = _queue(a, image_graph(random.randrange(1 << 24), save=False))
    try:
        queue_a = a.get("/api/queue").json()
        assert [item[1] for item in queue_a["queue_running"]] == [running]
        assert [item[1] for item in queue_a["queue_pending"]] == [pending]
        assert b.get("/api/queue").json() == {"queue_running": [], "queue_pending": []}
        assert b.get("/api/prompt").json()["exec_info"]["queue_remaining"] == 0
        assert a.get("/api/prompt").json()["exec_info"]["queue_remaining"] == 2
        for job in (running, pending):
            assert b.get(f"/api/jobs/{job}").status == 404
            assert b.post(f"/api/jobs/{job}/cancel").status == 404
        # ComfyUI's queue routes answer 200 but touch only B's own jobs.
        assert b.post("/api/queue", {"delete": [pending]}).status == 200
        assert b.post("/api/queue", {"clear": True}).status == 200
        assert b.post("/api/interrupt", {"prompt_id": running}).status == 200
        assert b.post("/api/interrupt", {}).status == 200
        time.sleep(0.3)
        assert _status(a, running) == "in_progress"
        assert _status(a, pending) == "pending"
    finally:
        a.post("/api/queue", {"delete": [pending]})
        a.post("/api/interrupt", {"prompt_id": running})
    _wait(a, running, "cancelled", "completed", "failed")
