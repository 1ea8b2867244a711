"""Existence oracles: what workspace B gets for an id of workspace A must be what it gets for
an id nobody uses. Client-chosen ids (a prompt's `prompt_id`, an asset's `id`) are named
inside the caller's workspace, so A's records never change B's answer (and never a 500)."""

from __future__ import annotations

import json
import random
import uuid

from tests.harness import multipart
from tests.identity.tenants import Tenant, new_tenant
from tests.server.wsutil import image_graph


def _submit(t: Tenant, prompt_id: str | None = None):
    body: dict = {"prompt": image_graph(random.randrange(1 << 24), save=False)}
    if prompt_id is not None:
        body["prompt_id"] = prompt_id
    return t.post("/api/prompt", body)


def _shape(r) -> tuple:
    """Everything of an answer that does not depend on the id itself."""
    body = r.json()
    return r.status, json.dumps([sorted(body), body.get("node_errors"), body.get("created_new")])


def test_a_prompt_id_of_another_workspace_answers_like_an_unused_one(iso_server):
    a, b = new_tenant(iso_server), new_tenant(iso_server)
    chosen_by_a = str(uuid.uuid4())
    r = _submit(a, chosen_by_a)
    assert r.status == 200, r.body
    a_job = r.json()["prompt_id"]
    a_generated = _submit(a).json()["prompt_id"]
    fresh = str(uuid.uuid4())
    answers = [_submit(b, pid) for pid in (chosen_by_a, a_job, a_generated, fresh)]
    assert len({_shape(r) for r in answers}) == 1, [(r.status, r.body) for r in answers]
    assert answers[0].status == 200
    b_ids = {r.json()["prompt_id"] for r in answers}
    assert len(b_ids) == 4 and not b_ids & {chosen_by_a, a_job, a_generated}
    # A's jobs are untouched; B's are B's own.
    assert a.get(f"/api/jobs/{a_job}").status == 200
    assert all(b.get(f"/api/jobs/{pid}").status == 200 for pid in b_ids)
    assert all(a.get(f"/api/jobs/{pid}").status == 404 for pid in b_ids)
    # Choosing the same id again inside one's own workspace still meets one's own job.
    again = _submit(b, fresh)
    assert again.status == 400 and again.json()["error"]["type"] == "duplicate_prompt_id"
    assert _submit(a, chosen_by_a).json()["error"]["type"] == "duplicate_prompt_id"


def _upload(t: Tenant, data: bytes, asset_id: str | None = None):
    fields = {"tags": "input", "name": "pic.png"}
    if asset_id is not None:
        fields["id"] = asset_id
    body, ctype = multipart(fields, {"file": ("pic.png", data)})
    return t.request("POST", "/api/assets", data=body, headers={"Content-Type": ctype})


def test_an_asset_id_or_content_of_another_workspace_answers_like_an_unused_one(iso_server):
    a, b = new_tenant(iso_server), new_tenant(iso_server)
    a_bytes = b"A's bytes " + uuid.uuid4().bytes
    chosen_by_a = str(uuid.uuid4())
    r = _upload(a, a_bytes, chosen_by_a)
    assert r.status == 201, r.body
    a_asset = r.json()["id"]
    a_generated = _upload(a, a_bytes + b"2").json()["id"]
    answers = [_upload(b, b"B's bytes " + uuid.uuid4().bytes, aid)
               for aid in (chosen_by_a, a_asset, a_generated, str(uuid.uuid4()))]
    # The same content as A's is no different from content nobody stored.
    answers.append(_upload(b, a_bytes, str(uuid.uuid4())))
    assert len({_shape(r) for r in answers}) == 1, [(r.status, r.body[:200]) for r in answers]
    assert answers[0].status == 201 and answers[0].json()["created_new"] is True
    b_ids = {r.json()["id"] for r in answers}
    assert len(b_ids) == 5 and not b_ids & {chosen_by_a, a_asset, a_generated}
    assert a.get(f"/api/assets/{a_asset}").json()["name"] == "pic.png"
    assert all(a.get(f"/api/assets/{aid}").status == 404 for aid in b_ids)
    # Uploading again with one's own chosen id is idempotent: the same record comes back.
    chosen_by_b = str(uuid.uuid4())
    first = _upload(b, uuid.uuid4().bytes, chosen_by_b)
    repeat = _upload(b, uuid.uuid4().bytes, chosen_by_b)
    assert repeat.json()["id"] == first.json()["id"] and repeat.json()["created_new"] is False
