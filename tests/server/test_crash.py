"""kill -9 mid-run, start again on the same files and database: nothing lost or stuck."""

from __future__ import annotations

import time

import pytest

from tests.server.wsutil import database_url, image_graph, queue_prompt, server_with_pack

JOBS = 20
SLOW_SECONDS = 0.4


def statuses(server, ids: list[str]) -> dict[str, str]:
    return {pid: server.get(f"/api/jobs/{pid}").json()["status"] for pid in ids}


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_kill_mid_run_then_restart_finishes_every_job(backend, tmp_path):
    base = tmp_path / "base"
    server = server_with_pack(base, database_url(backend)).start()
    try:
        ids = [queue_prompt(server, image_graph(0x102030 + i, prefix=f"crash{i:02}",
                                                slow=SLOW_SECONDS))
               for i in range(JOBS)]
        # Let a few finish, then kill while one is in the middle of its slow node.
        deadline = time.monotonic() + 60
        while True:
            done = [p for p, s in statuses(server, ids).items() if s == "completed"]
            if len(done) >= 3:
                break
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.05)
        history_before = server.get(f"/api/history?max_items={JOBS * 2}").json()
        running = server.get("/api/queue").json()["queue_running"]
        server.kill()
    except BaseException:
        server.stop()
        raise
    assert running, "the kill landed between jobs; the test needs one mid-run"
    killed_mid_run = running[0][1]

    # The same base directory and database, a new process.
    again = server_with_pack(base, server.database_url).start()
    try:
        deadline = time.monotonic() + 120
        while True:
            queue = again.get("/api/queue").json()
            if not queue["queue_running"] and not queue["queue_pending"]:
                break
            assert time.monotonic() < deadline, again.log()
            time.sleep(0.1)
        final = statuses(again, ids)
        assert set(final.values()) <= {"completed", "failed"}, final
        history = again.get(f"/api/history?max_items={JOBS * 2}").json()
        assert set(history) == set(ids)  # every job is in history: none lost
        for pid in ids:
            entry = history[pid]
            if final[pid] == "completed":
                assert entry["status"]["status_str"] == "success"
                image = entry["outputs"]["3"]["images"][0]
                assert (base / "output" / image["subfolder"] / image["filename"]).is_file()
            else:
                assert entry["status"]["status_str"] == "error"
                errors = [data for name, data in entry["status"]["messages"]
                          if name == "execution_error"]
                assert errors and errors[0]["exception_message"], entry
        # The job the kill interrupted failed with a reason; the finished ones kept their
        # results; everything queued behind it ran after the restart.
        assert final[killed_mid_run] == "failed"
        assert "server" in history[killed_mid_run]["status"]["messages"][-1][1]["exception_message"]
        assert set(done) <= {p for p, s in final.items() if s == "completed"}
        for pid, entry in history_before.items():
            assert history[pid]["outputs"] == entry["outputs"]
            assert history[pid]["status"] == entry["status"]
        assert list(final.values()).count("failed") == 1
        assert again.get(f"/api/jobs/{killed_mid_run}").json()["status"] == "failed"
    finally:
        again.stop()
