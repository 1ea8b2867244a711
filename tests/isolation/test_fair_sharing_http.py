"""Fair sharing over HTTP: one worker, two tenants; B's job does not wait behind all of A's."""

from __future__ import annotations

import random
import time

from tests.identity.tenants import new_tenant
from tests.server.wsutil import image_graph


def test_a_long_queue_does_not_starve_another_workspace(iso_server):
    a, b = new_tenant(iso_server), new_tenant(iso_server)

    def queue(t, slow=None):
        graph = image_graph(random.randrange(1 << 24), slow=slow, save=False)
        return t.post("/api/prompt", {"prompt": graph}).json()["prompt_id"]

    blocker = queue(a, slow=1.0)  # keeps the worker busy while the queues fill
    deadline = time.monotonic() + 30
    while a.get(f"/api/jobs/{blocker}").json()["status"] != "in_progress":
        assert time.monotonic() < deadline
        time.sleep(0.03)
    a_jobs = [queue(a) for _ in range(3)]
    b_job = queue(b)
    deadline = time.monotonic() + 60
    while True:
        states = [a.get(f"/api/jobs/{j}").json()["status"] for j in [blocker, *a_jobs]]
        if all(s == "completed" for s in states) and \
                b.get(f"/api/jobs/{b_job}").json()["status"] == "completed":
            break
        assert time.monotonic() < deadline
        time.sleep(0.05)
    started = {j: a.get(f"/api/jobs/{j}").json()["execution_start_time"] for j in a_jobs}
    b_started = b.get(f"/api/jobs/{b_job}").json()["execution_start_time"]
    # FIFO would run all three of A's first; round-robin runs B's right after A's blocker.
    assert b_started <= min(started.values())
