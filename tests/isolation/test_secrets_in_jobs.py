"""A node gets a secret only inside its own workspace's job, and the value never reaches
the job's history."""

from __future__ import annotations

import hashlib
import shutil
import time
import uuid
from pathlib import Path

import pytest

from tests.identity.fixtures import start_auth_server
from tests.identity.tenants import Tenant, new_tenant

PACK = Path(__file__).resolve().parent / "secret_pack"


@pytest.fixture(scope="module")
def secret_server(tmp_path_factory):
    base = tmp_path_factory.mktemp("secrets-in-jobs")
    shutil.copytree(PACK, base / "custom_nodes" / "secret_pack",
                    ignore=shutil.ignore_patterns("__pycache__"))
    srv = start_auth_server(base, "sqlite")
    yield srv
    srv.stop()


def _run(t: Tenant, name: str) -> tuple[str, dict]:
    prompt = {"1": {"class_type": "TestSecretDigest", "inputs": {"name": name}}}
    r = t.post("/api/prompt", {"prompt": prompt})
    assert r.status == 200, r.body
    prompt_id = r.json()["prompt_id"]
    deadline = time.monotonic() + 30
    while prompt_id not in (history := t.get(f"/api/history/{prompt_id}").json()):
        assert time.monotonic() < deadline, t.server.log()
        time.sleep(0.05)
    entry = history[prompt_id]
    return entry["outputs"]["1"]["text"][0], entry


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:16]


def test_node_gets_its_own_workspace_secret_only(secret_server):
    a, b = new_tenant(secret_server), new_tenant(secret_server)
    a_value, b_value = "a-" + uuid.uuid4().hex, "b-" + uuid.uuid4().hex
    assert a.post("/api/secrets", {"name": "token", "secret_value": a_value}).status == 201
    assert b.post("/api/secrets", {"name": "token", "secret_value": b_value}).status == 201
    assert a.post("/api/secrets", {"name": "only-a", "secret_value": "x" + a_value}).status == 201
    got, entry = _run(a, "token")
    assert got == _digest(a_value)
    assert a_value not in str(entry)
    assert _run(b, "token")[0] == _digest(b_value)
    assert _run(b, "only-a")[0] == "missing"
    assert _run(a, "nothing-here")[0] == "missing"
    assert a_value not in secret_server.log() and b_value not in secret_server.log()


def test_no_secret_outside_a_job():
    from opencomfy.secrets.node_access import SecretUnavailable, get_secret

    with pytest.raises(SecretUnavailable):
        get_secret("token")
