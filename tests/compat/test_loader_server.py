"""A real server with packs that register routes at core paths, read the queue through
``PromptServer.instance.prompt_queue`` and use V3 dynamic inputs; driven over HTTP."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from tests.harness import Server
from tests.server.wsutil import queue_prompt

PACKS = Path(__file__).parent / "packs_loader"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("loader-server")
    for name in ("core_route_pack", "queue_pack", "dynamic_pack"):
        shutil.copytree(PACKS / name, base / "custom_nodes" / name,
                        ignore=shutil.ignore_patterns("__pycache__"))
    srv = Server(base_dir=base).start()
    yield srv
    srv.stop()


# -- routes -------------------------------------------------------------------------------

def test_a_pack_route_at_a_core_path_and_method_does_not_replace_the_core_route(server):
    for path in ("/object_info", "/api/object_info"):
        body = server.get(path).json()
        assert "hijacked" not in body and "PrimitiveInt" in body, path
    assert "exec_info" in server.get("/prompt").json()
    log = server.log()
    assert "custom node route GET /object_info" in log and "ignored" in log


def test_a_pack_route_at_a_core_path_with_another_method_answers(server):
    for path in ("/object_info", "/api/object_info"):
        r = server.post(path, {})
        assert r.status == 200 and r.json() == {"pack": "core_route_pack", "method": "POST"}


def test_a_pack_route_replaces_our_stand_in_for_it(server):
    for path in ("/vhs/queryvideo?filename=x.mp4", "/api/vhs/queryvideo?filename=x.mp4"):
        r = server.get(path)
        assert r.status == 200, (path, r.body)
        body = r.json()
        assert body["pack"] == "core_route_pack" and body["loaded"]["alpha"] is True


def test_a_pack_route_replaces_a_comfyui_manager_route_as_in_comfyui(server):
    assert server.get("/users").json() == {"pack": "core_route_pack"}
    assert server.get("/api/users").json() == {"pack": "core_route_pack"}


# -- the queue view --------------------------------------------------------------------------

def _graph(node: dict) -> dict:
    return {"1": node}


def test_the_queue_seen_from_a_route_and_from_a_running_node(server):
    assert server.get("/queue_pack/queue").json()["remaining"] == 0
    sleeper = queue_prompt(server, _graph({"class_type": "QueueSleep", "inputs": {"seconds": 1.5}}))
    probe = queue_prompt(server, _graph({"class_type": "QueueProbe", "inputs": {"tag": "a"}}))
    deadline = time.monotonic() + 10
    seen = server.get("/queue_pack/queue").json()
    while seen["running"] != [sleeper] and time.monotonic() < deadline:
        time.sleep(0.05)
        seen = server.get("/queue_pack/queue").json()
    # From the route (on the server's loop): the sleeper runs, the probe waits.
    assert seen["running"] == [sleeper] and seen["pending"] == [probe]
    assert seen["remaining"] == 2
    entry = server.wait_for_job(probe)
    assert entry["status"]["status_str"] == "success", entry["status"]
    inside = json.loads(entry["outputs"]["1"]["text"][0])
    # From the node (the worker's thread): it sees itself running, and the sleeper's history.
    assert inside["running"] == [probe] and inside["own_prompt_id"] == probe
    assert inside["pending"] == [] and inside["remaining"] == 1
    assert sleeper in inside["history"]
    assert inside["thread"] != "MainThread"
    history = server.get(f"/queue_pack/history/{probe}").json()
    assert list(history) == [probe] and history[probe]["status"]["status_str"] == "success"
    assert history[probe]["prompt"][1] == probe


def test_wipe_queue_from_a_route(server):
    sleeper = queue_prompt(server, _graph({"class_type": "QueueSleep", "inputs": {"seconds": 1.0}}))
    waiting = [queue_prompt(server, _graph({"class_type": "QueueProbe", "inputs": {"tag": t}}))
               for t in ("x", "y")]
    r = server.post("/queue_pack/wipe", {})
    assert r.json() == {"wiped": True}
    deadline = time.monotonic() + 5
    while server.get("/api/queue").json()["queue_pending"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.get("/api/queue").json()["queue_pending"] == []
    for prompt_id in waiting:
        assert server.wait_for_job(prompt_id)["status"]["status_str"] == "error"
    assert server.wait_for_job(sleeper)["status"]["status_str"] == "success"


# -- V3 dynamic inputs ---------------------------------------------------------------------

def _run(server, graph: dict) -> dict:
    entry = server.wait_for_job(queue_prompt(server, graph))
    assert entry["status"]["status_str"] == "success", entry["status"]
    return entry["outputs"]


def test_autogrow_object_info_and_run(server):
    info = server.get("/api/object_info/AutogrowSum").json()["AutogrowSum"]
    assert info["input"]["required"]["values"] == ["COMFY_AUTOGROW_V3", {"template": {
        "input": {"required": {"value": ["INT", {"forceInput": True}]}},
        "names": ["a", "b", "c"], "min": 1}}]
    assert info["output_name"] == ["total", "names"]
    graph = {"1": {"class_type": "PrimitiveInt", "inputs": {"value": 2}},
             "2": {"class_type": "PrimitiveInt", "inputs": {"value": 5}},
             "3": {"class_type": "AutogrowSum", "inputs": {"values.a": ["1", 0],
                                                           "values.c": ["2", 0]}},
             "4": {"class_type": "PreviewAny", "inputs": {"source": ["3", 0]}},
             "5": {"class_type": "PreviewAny", "inputs": {"source": ["3", 1]}}}
    outputs = _run(server, graph)
    assert outputs["4"]["text"] == ["7"] and outputs["5"]["text"] == ["a,c"]


def test_autogrow_required_slot_missing_is_a_400(server):
    graph = {"1": {"class_type": "PrimitiveInt", "inputs": {"value": 2}},
             "3": {"class_type": "AutogrowSum", "inputs": {"values.b": ["1", 0]}},
             "4": {"class_type": "PreviewAny", "inputs": {"source": ["3", 0]}}}
    r = server.post("/api/prompt", {"prompt": graph})
    assert r.status == 400
    assert "values.a" in json.dumps(r.json()["node_errors"]["3"])


def test_autogrow_with_nothing_linked_gives_an_empty_dict(server):
    graph = {"1": {"class_type": "AutogrowCount", "inputs": {}},
             "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}}
    assert _run(server, graph)["2"]["text"] == ["[]"]
    graph["3"] = {"class_type": "PrimitiveInt", "inputs": {"value": 9}}
    graph["1"]["inputs"] = {"items.item2": ["3", 0]}
    assert _run(server, graph)["2"]["text"] == ["[('item2', 9)]"]


def test_dynamic_slot_linked_and_unlinked(server):
    info = server.get("/api/object_info/SlotOffset").json()["SlotOffset"]
    assert info["input"]["optional"]["base"] == ["COMFY_DYNAMICSLOT_V3", {
        "slotType": "INT", "inputs": {"required": {"offset": ["INT", {"default": 10}]}},
        "forceInput": True}]
    graph = {"1": {"class_type": "SlotOffset", "inputs": {}},
             "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}}
    assert _run(server, graph)["2"]["text"] == ["unlinked"]
    graph["3"] = {"class_type": "PrimitiveInt", "inputs": {"value": 3}}
    graph["1"]["inputs"] = {"base": ["3", 0], "base.offset": 4}
    assert _run(server, graph)["2"]["text"] == ["7 from ['base', 'offset']"]


def test_match_type_passes_the_linked_type_through(server):
    info = server.get("/api/object_info/MatchPass").json()["MatchPass"]
    assert info["output"] == ["COMFY_MATCHTYPE_V3"] and info["output_name"] == ["same"]
    graph = {"1": {"class_type": "PrimitiveInt", "inputs": {"value": 6}},
             "2": {"class_type": "MatchPass", "inputs": {"value": ["1", 0]}},
             "3": {"class_type": "EmptyImage", "inputs": {"width": ["2", 0], "height": 2,
                                                          "batch_size": 1, "color": 0}},
             "4": {"class_type": "GetImageSize", "inputs": {"image": ["3", 0]}},
             "5": {"class_type": "PreviewAny", "inputs": {"source": ["4", 0]}}}
    assert _run(server, graph)["5"]["text"] == ["6"]
