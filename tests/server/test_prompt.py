"""POST/GET /api/prompt on a real server (SQLite and PostgreSQL): validation, durability,
ComfyUI's body fields, and bad input."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.server.queue_helpers import (Blocker, database_url, graph, new_id, prompt_error_shape,
                                        queue, server_with_pack, wait_idle, wait_status)


# A custom node pack that rewrites POST /prompt bodies, as ComfyUI lets packs do.
ON_PROMPT_PACK = """
from server import PromptServer

def tag(json_data):
    extra = json_data.get("extra_data")
    if isinstance(extra, dict) and extra.get("tag_me"):
        extra["tagged_by_handler"] = True
    return json_data

PromptServer.instance.add_on_prompt_handler(tag)
NODE_CLASS_MAPPINGS = {}
"""


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def server(request, tmp_path_factory):
    base = tmp_path_factory.mktemp(f"prompt-{request.param}")
    pack = base / "custom_nodes" / "on_prompt_pack"
    pack.mkdir(parents=True)
    (pack / "__init__.py").write_text(ON_PROMPT_PACK)
    srv = server_with_pack(base, database_url(request.param)).start()
    yield srv
    srv.stop()


def test_submit_answers_after_the_job_is_stored(server):
    r = server.post("/api/prompt", {"prompt": graph(), "client_id": "cli-1"})
    assert r.status == 200
    body = r.json()
    assert set(body) == {"prompt_id", "number", "node_errors"} and body["node_errors"] == {}
    assert isinstance(body["number"], int)
    # The job exists the moment the answer arrives, whatever its progress.
    assert server.get(f"/api/jobs/{body['prompt_id']}").status == 200
    wait_status(server, body["prompt_id"], "completed")
    entry = server.get(f"/api/history/{body['prompt_id']}").json()[body["prompt_id"]]
    number, pid, prompt, extra, outputs = entry["prompt"]
    assert (number, pid) == (body["number"], body["prompt_id"])
    assert extra["client_id"] == "cli-1" and isinstance(extra["create_time"], int)
    assert outputs == ["3"] and prompt["1"]["class_type"] == "EmptyImage"


def test_both_paths_answer(server):
    for path in ("/prompt", "/api/prompt"):
        assert server.get(path).json().keys() == {"exec_info"}
        assert server.post(path, {"prompt": graph()}).status == 200
    wait_idle(server)


def test_client_prompt_id_number_and_extra_data_are_honoured(server):
    pid = new_id()
    r = server.post("/api/prompt", {
        "prompt": graph(), "prompt_id": pid, "number": 7.5,
        "extra_data": {"extra_pnginfo": {"workflow": {"id": "wf-prompt-test"}}, "note": "hi"},
        "workflow_version_id": "v1"})
    assert r.status == 200 and r.json()["prompt_id"] == pid and r.json()["number"] == 7.5
    wait_status(server, pid, "completed")
    job = server.get(f"/api/jobs/{pid}").json()
    assert job["workflow_id"] == "wf-prompt-test"
    assert job["workflow"]["extra_data"]["note"] == "hi"
    assert job["priority"] == 7.5
    assert server.get("/api/jobs?workflow_id=wf-prompt-test").json()["pagination"]["total"] == 1


def test_on_prompt_handlers_rewrite_the_body(server):
    pid = queue(server, extra_data={"tag_me": True})
    wait_status(server, pid, "completed")
    extra = server.get(f"/api/jobs/{pid}").json()["workflow"]["extra_data"]
    assert extra["tagged_by_handler"] is True


def test_front_and_number_order_the_queue(server):
    with Blocker(server):
        a = queue(server)
        b = queue(server)
        c = queue(server, front=True)
        d = queue(server, number=-1e9)
        pending = server.get("/api/queue").json()["queue_pending"]
        assert [item[1] for item in pending] == [d, c, a, b]


def test_partial_execution_targets_choose_the_outputs(server):
    prompt = graph()
    prompt["9"] = {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}
    pid = queue(server, prompt, partial_execution_targets=["9"])
    wait_status(server, pid, "completed")
    entry = server.get(f"/api/history/{pid}").json()[pid]
    assert entry["prompt"][4] == ["9"]
    assert set(entry["outputs"]) == {"9"}


def test_sensitive_extra_data_is_never_returned(server):
    pid = queue(server, extra_data={"api_key_comfy_org": "sk-secret", "auth_token_comfy_org": "tok"})
    wait_status(server, pid, "completed")
    for path in (f"/api/history/{pid}", f"/api/jobs/{pid}", "/api/history", "/api/jobs",
                 f"/api/history_v2/{pid}", "/api/history_v2", "/api/queue"):
        assert b"sk-secret" not in server.get(path).body and b"tok\"" not in server.get(path).body


@pytest.mark.parametrize("body,kind", [
    (b"{not json", "invalid_json"),
    (b"", "invalid_json"),
    (b"[1, 2]", "invalid_prompt"),
    (b'{"client_id": "x"}', "no_prompt"),
    (b'{"prompt": "EmptyImage"}', "invalid_prompt"),
    (b'{"prompt": [1]}', "invalid_prompt"),
    (b'{"prompt": {"1": {"class_type": "NoSuchNode", "inputs": {}}}}', "invalid_prompt"),
    (b'{"prompt": {"1": {"class_type": "EmptyImage", "inputs": {}}}, "prompt_id": "abc"}',
     "invalid_prompt_id"),
    (b'{"prompt": {"1": {"class_type": "EmptyImage", "inputs": {}}}, "prompt_id": 5}',
     "invalid_prompt_id"),
    (b'{"prompt": {"1": {"class_type": "EmptyImage", "inputs": {}}}, "number": "soon"}',
     "invalid_prompt"),
    (b'{"prompt": {"1": {"class_type": "EmptyImage", "inputs": {}}}, "extra_data": [1]}',
     "invalid_prompt"),
    (b'{"prompt": {"1": {"class_type": "EmptyImage", "inputs": {}}}, "partial_execution_targets": "1"}',
     "invalid_prompt"),
    (b'{"prompt": {"1": {"class_type": "EmptyImage", "inputs": {}}}, "client_id": "' + b"c" * 300 + b'"}',
     "invalid_prompt"),
    (b'{"prompt": {"1": {"class_type": "EmptyImage", "inputs": {}}}, "workflow_id": 12}',
     "invalid_prompt"),
])
def test_bad_bodies_get_comfyui_errors(server, body, kind):
    r = server.request("POST", "/api/prompt", data=body, headers={"Content-Type": "application/json"})
    assert prompt_error_shape(r)["type"] == kind


def test_graph_errors_name_the_nodes(server):
    prompt = graph()
    prompt["2"]["inputs"]["image"] = ["42", 0]  # a link to a node that does not exist
    r = server.post("/api/prompt", {"prompt": prompt})
    error = prompt_error_shape(r)
    assert error["type"] in ("prompt_outputs_failed_validation", "invalid_prompt")
    assert r.json()["node_errors"] or "42" in json.dumps(error)
    # A graph with no output node is refused as ComfyUI does.
    r = server.post("/api/prompt", {"prompt": {"1": graph()["1"]}})
    assert prompt_error_shape(r)["type"] == "prompt_no_outputs"


def test_duplicate_prompt_id_is_refused(server):
    pid = queue(server, prompt_id=new_id())
    r = server.post("/api/prompt", {"prompt": graph(), "prompt_id": pid})
    assert prompt_error_shape(r)["type"] == "duplicate_prompt_id"
    wait_idle(server)



def test_concurrent_submits_are_all_stored_once(server):
    wait_idle(server)
    before = server.get("/api/jobs?limit=1").json()["pagination"]["total"]
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda _: server.post("/api/prompt", {"prompt": graph()}), range(64)))
    assert all(r.status == 200 for r in answers)
    bodies = [r.json() for r in answers]
    assert len({b["prompt_id"] for b in bodies}) == 64 and len({b["number"] for b in bodies}) == 64
    assert server.get("/api/jobs?limit=1").json()["pagination"]["total"] == before + 64
    wait_idle(server, timeout=120)
