"""ComfyUI-Manager from PyPI (comfyui-manager, pinned in requirements/test.txt), loaded as
ComfyUI loads it with --enable-manager: its routes answer, and without network it starts."""

from __future__ import annotations

import importlib.util

import pytest

from tests.harness import Server

pytestmark = pytest.mark.skipif(importlib.util.find_spec("comfyui_manager") is None,
                                reason="comfyui-manager is not installed")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("manager")
    # Its own config, as a user would write it: no fetching of node lists, no log file.
    config = base / "user" / "__manager" / "config.ini"
    config.parent.mkdir(parents=True)
    config.write_text("[default]\nnetwork_mode = offline\nfile_logging = False\n")
    srv = Server(base_dir=base, args=["--enable-manager"]).start()
    yield srv
    srv.stop()


def test_manager_routes_answer_at_bare_path_and_under_api(server):
    for path in ("/v2/manager/version", "/api/v2/manager/version"):
        r = server.get(path)
        assert r.status == 200 and r.body.decode().startswith("V4."), (path, r.body)
    status = server.get("/api/v2/manager/queue/status").json()
    assert status["is_processing"] is False and status["total_count"] == 0
    assert server.get("/api/v2/customnode/installed").status == 200


def test_core_routes_still_answer_with_the_manager_middleware(server):
    assert server.get("/api/system_stats").status == 200
    assert "KSampler" in server.get("/api/object_info").json()
    log = server.log()
    assert "[START] ComfyUI-Manager" in log and "comfyui_manager.start() failed" not in log


def test_without_network_the_server_starts_and_the_manager_answers(tmp_path):
    # Default config (public network mode): fetching its lists fails, the server starts.
    srv = Server(base_dir=tmp_path, args=["--enable-manager"]).start()
    try:
        assert srv.get("/api/v2/manager/version").status == 200
        assert srv.get("/health").status == 200
    finally:
        srv.stop()


def test_without_the_flag_the_manager_is_not_loaded(tmp_path):
    srv = Server(base_dir=tmp_path).start()
    try:
        assert srv.get("/api/v2/manager/version").status == 404
    finally:
        srv.stop()
