"""A real server with the test packs in <base>/custom_nodes, driven over HTTP and WebSocket."""

from __future__ import annotations

import pytest

from tests.compat.conftest import install_packs
from tests.harness import Server
from tests.server.wsutil import Client, json_events, new_id, queue_prompt


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("packs-server")
    install_packs(base)
    srv = Server(base_dir=base).start()
    yield srv
    srv.stop()


def test_pack_route_answers_at_bare_path_and_under_api(server):
    for path in ("/v1pack/hello", "/api/v1pack/hello"):
        r = server.get(path)
        assert r.status == 200, (path, r.body)
        assert r.json()["hello"] == "v1pack"
        assert r.json()["output_dir"] == str((server.base_dir / "output").resolve())
    r = server.post("/api/v1pack/echo", {"n": 3})
    assert r.status == 200 and r.json() == {"echo": {"n": 3}}


def test_object_info_has_the_packs_nodes(server):
    info = server.get("/api/object_info").json()
    assert "shadowed" not in info and "shadowed" not in server.get("/object_info").json()
    for class_type in ("V1Add", "V3Multiply", "RelativeDouble", "SingleFileHello", "OverridePackOwn"):
        assert class_type in info
    assert info["V3Multiply"]["input"]["required"]["mode"] == [
        "COMBO", {"default": "mul", "multiselect": False, "options": ["mul", "add"]}]
    assert info["V3Multiply"]["python_module"] == "custom_nodes.v3_pack"
    assert info["SaveImage"]["python_module"] == "nodes"  # the override pack did not win
    assert info["V1Add"]["display_name"] == "Add (V1 pack)"


def test_web_directory_is_served_and_listed(server):
    assert "/extensions/v1_pack/js/v1pack.js" in server.get("/api/extensions").json()
    r = server.get("/extensions/v1_pack/js/v1pack.js")
    assert r.status == 200 and b"v1pack extension" in r.body


def test_v3_node_runs_over_post_prompt(server):
    graph = {"1": {"class_type": "V3Multiply",
                   "inputs": {"value": 2.0, "factor": 3, "mode": "mul", "label": "v="}},
             "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 1]}}}
    prompt_id = queue_prompt(server, graph)
    entry = server.wait_for_job(prompt_id)
    assert entry["status"]["status_str"] == "success", entry["status"]
    assert entry["outputs"]["2"]["text"] == ["v=6.0 from node 1"]
    assert entry["outputs"]["1"] == {"text": ["v=6.0 from node 1"]}


def test_v3_validation_error_is_a_400_with_node_errors(server):
    graph = {"1": {"class_type": "V3Multiply", "inputs": {"value": 2.0, "factor": 7, "mode": "mul"}},
             "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}}
    r = server.post("/api/prompt", {"prompt": graph})
    assert r.status == 400
    body = r.json()
    assert body["error"]["type"] == "prompt_outputs_failed_validation"
    assert body["node_errors"]["1"]["errors"][0]["type"] == "custom_validation_failed"


def test_custom_events_and_progress_reach_the_websocket_client(server):
    client_id = new_id()
    client = Client(server, client_id)
    try:
        graph = {"1": {"class_type": "V1Add", "inputs": {"a": 20, "b": 22}},
                 "2": {"class_type": "V1ShowInt", "inputs": {"value": ["1", 0]}}}
        prompt_id = queue_prompt(server, graph, client_id)
        events = json_events(client.until_done(prompt_id), None)
    finally:
        client.close()
    shown = [e["data"] for e in events if e["type"] == "v1pack.shown"]
    assert shown == [{"node": "2", "value": 42}]
    progress = [e["data"] for e in events if e["type"] == "progress" and e["data"]["node"] == "1"]
    assert [(p["value"], p["max"]) for p in progress] == [(1, 2), (2, 2)]
    executed = [e["data"]["output"] for e in events
                if e["type"] == "executed" and e["data"]["node"] == "2"]
    assert executed == [{"text": ["42"]}]
