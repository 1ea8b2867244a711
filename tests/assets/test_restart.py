"""A download running when the server is killed is failed, with its reason, at the next start."""

from __future__ import annotations

import time
import uuid

from tests.assets.factories import send_json


def test_task_running_at_a_kill_is_failed_after_restart(make_server, source, tmp_path):
    base = tmp_path / "restart"
    args = ("--asset-download-host", "127.0.0.1")
    srv = make_server(*args, base_dir=base)
    r = send_json(srv, "POST", "/api/assets/download",
                  {"source_url": f"{source}/slow/big.safetensors?{uuid.uuid4()}"})
    task_id = r.json()["task_id"]
    deadline = time.monotonic() + 10
    while srv.get(f"/api/tasks/{task_id}").json()["status"] != "running":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    srv.kill()
    again = make_server(*args, base_dir=base)
    task = again.get(f"/api/tasks/{task_id}").json()
    assert task["status"] == "failed"
    assert task["error_message"] == "the server restarted while the task was unfinished"
    # nothing half-written: no asset, no staged file left behind
    assert again.get("/api/assets").json()["total"] == 0
    assert list((base / "blobs" / ".staging").glob(".staging-*")) == []
