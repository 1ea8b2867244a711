"""JSON carried inside multipart form fields goes through the same depth cap as JSON bodies:
a deeply nested `user_metadata` (POST /api/assets) or `original_ref` (POST /upload/mask) is a
400 in the usual error shape, never a 500 with a RecursionError traceback in the log."""

from __future__ import annotations

import pytest

from tests.files.factories import gradient_alpha_png, multipart
from tests.identity.fixtures import start_auth_server
from tests.identity.tenants import new_tenant

DEEP = "[" * 20_000 + "]" * 20_000  # under the 64 KiB form-field cap
DEEP_OBJECT = '{"a":' * 5_000 + "1" + "}" * 5_000


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = start_auth_server(tmp_path_factory.mktemp("deep-form-json"), "sqlite")
    yield srv
    srv.stop()


def _no_traceback(server) -> None:
    log = server.log()
    assert "RecursionError" not in log and "Traceback" not in log, log


@pytest.mark.parametrize("deep", [DEEP, DEEP_OBJECT], ids=["array", "object"])
def test_deep_user_metadata_is_a_400(server, deep):
    tenant = new_tenant(server)
    body, headers = multipart({"name": "x.bin", "user_metadata": deep},
                              {"file": ("x.bin", b"some bytes", "application/octet-stream")})
    r = tenant.post("/api/assets", data=body, headers=headers)
    assert r.status == 400, (r.status, r.body[:300])
    assert {"code", "message"} <= set(r.json()) and r.json().get("field") == "user_metadata"
    # The same field, shallow, is accepted: the cap is about depth only.
    body, headers = multipart({"name": "y.bin", "user_metadata": '{"k": [[1]]}'},
                              {"file": ("y.bin", b"other bytes", "application/octet-stream")})
    r = tenant.post("/api/assets", data=body, headers=headers)
    assert r.status == 201 and r.json()["user_metadata"] == {"k": [[1]]}, r.body[:300]
    _no_traceback(server)


@pytest.mark.parametrize("deep", [DEEP, DEEP_OBJECT], ids=["array", "object"])
def test_deep_original_ref_is_a_400(server, deep):
    tenant = new_tenant(server)
    body, headers = multipart({"original_ref": deep},
                              {"image": ("m.png", gradient_alpha_png(), "image/png")})
    r = tenant.post("/api/upload/mask", data=body, headers=headers)
    assert r.status == 400, (r.status, r.body[:300])
    assert {"code", "message"} <= set(r.json()) and r.json()["code"] == "invalid_original_ref"
    _no_traceback(server)
