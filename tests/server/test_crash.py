"""kill -9 mid-run, start again on the same files and database: nothing lost or stuck."""

from __future__ import annotations

import time

import pytest

from tests.server.wsutil import database_url, image_graph, queue_prompt, server_with_pack

JOBS = 20
#: The job the kill lands in: it sleeps far longer than the test waits.
VICTIM = 4
SLOW_SECONDS = 0.2


def statuses(server, ids: list[str]) -> dict[str, str]:
    return {pid: server.get(f"/api/jobs/{pid}").json()["status"] for pid in ids}


def wait_until(predicate, server, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_kill_mid_run_then_restart_finishes_every_job(backend, tmp_path):
    base = tmp_path / "base"
    server = server_with_pack(base, database_url(backend)).start()
    try:
        ids = [queue_prompt(server, image_graph(
                   0x102030 + i, prefix=f"crash{i:02}",
                   slow=120.0 if i == VICTIM else SLOW_SECONDS))
               for i in range(JOBS)]
        victim = ids[VICTIM]
        wait_until(lambda: server.get(f"/api/jobs/{victim}").json()["status"] == "in_progress",
                   server)
        time.sleep(0.2)  # well inside its slow node
        history_before = server.get(f"/api/history?max_items={JOBS * 2}").json()
        server.kill()
    except BaseException:
        server.stop()
        raise
    assert set(history_before) == set(ids[:VICTIM])

    # The same base directory and database, a new process.
    again = server_with_pack(base, server.database_url).start()
    try:
        def drained() -> bool:
            queue = again.get("/api/queue").json()
            return not queue["queue_running"] and not queue["queue_pending"]

        wait_until(drained, again, timeout=120)
        final = statuses(again, ids)
        # Never lost, never stuck, never reported done: only the interrupted job failed.
        assert final == {pid: "failed" if pid == victim else "completed" for pid in ids}
        history = again.get(f"/api/history?max_items={JOBS * 2}").json()
        assert set(history) == set(ids)
        for pid, entry in history_before.items():  # what was stored survived the kill
            assert history[pid]["outputs"] == entry["outputs"]
            assert history[pid]["status"] == entry["status"]
        for pid in ids:
            entry = history[pid]
            if pid == victim:
                assert entry["status"]["status_str"] == "error"
                errors = [data for name, data in entry["status"]["messages"]
                          if name == "execution_error"]
                assert errors and "server" in errors[0]["exception_message"], entry
                detail = again.get(f"/api/jobs/{pid}").json()
                assert detail["status"] == "failed"
            else:
                assert entry["status"]["status_str"] == "success"
                image = entry["outputs"]["3"]["images"][0]
                assert (base / "output" / image["subfolder"] / image["filename"]).is_file()
    finally:
        again.stop()
