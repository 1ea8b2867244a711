"""Sign-in hardening: `next` only leads to a path of this server (decoded, double-encoded
too), and an opaque `Origin: null` is refused like any other foreign origin."""

from __future__ import annotations

import http.client
import json
import urllib.parse

import pytest

from opencomfy.http.login import _safe_next
from tests.identity.tenants import create_user, new_tenant

PASSWORD = "pw-hardening-1"


def _post(srv, path: str, body: bytes, headers: dict) -> tuple[int, dict, bytes]:
    """One POST, redirects not followed (urllib would follow the 303)."""
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
    try:
        conn.request("POST", path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def _form_login(srv, user, *, next_: str | None = None, origin: str | None = None):
    path = "/login" + (f"?next={next_}" if next_ is not None else "")
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if origin is not None:
        headers["Origin"] = origin
    body = urllib.parse.urlencode({"email": user.email, "password": PASSWORD}).encode()
    return _post(srv, path, body, headers)


@pytest.mark.parametrize("target", [
    "/\\evil.example", "/%5Cevil.example", "/%255Cevil.example", "//evil.example", "/%2F/evil.example",
    "/%252F%252Fevil.example", "/\tevil", "/%09/evil.example", "/%0d%0aSet-Cookie:a=b", "https://evil.example",
    "javascript:alert(1)", "evil.example", "%2F%2Fevil.example", "/%2525252525252F", "/caf\u00e9", None, "",
])
def test_safe_next_refuses_everything_but_a_local_path(target):
    assert _safe_next(target) == "/"


@pytest.mark.parametrize("target", ["/", "/queue", "/a/b?c=1&next=%2Fx", "/x%2520y"])
def test_safe_next_keeps_local_paths(target):
    assert _safe_next(target) == target


def test_login_redirects_only_to_a_local_path(auth_server):
    user = create_user(auth_server, password=PASSWORD)
    for raw, expected in [("%2F%5Cevil.example", "/"), ("%2F%255Cevil.example", "/"),
                          ("%2F%2Fevil.example", "/"), ("https%3A%2F%2Fevil.example", "/"),
                          ("%2F%09%2Fevil.example", "/"), ("%2Fqueue%3Fx%3D1", "/queue?x=1")]:
        status, headers, _ = _form_login(auth_server, user, next_=raw, origin=auth_server.url)
        assert status == 303, (raw, status)
        assert headers["location"] == expected, raw


def test_login_with_origin_null_is_refused(auth_server):
    user = create_user(auth_server, password=PASSWORD)
    status, headers, _ = _form_login(auth_server, user, origin="null")
    assert status == 403 and "set-cookie" not in headers
    status, headers, body = _post(auth_server, "/login",
                                  json.dumps({"email": user.email, "password": PASSWORD}).encode(),
                                  {"Content-Type": "application/json", "Origin": "null"})
    assert status == 403 and "set-cookie" not in headers
    assert json.loads(body)["code"] == "cross_origin_refused"
    status, headers, _ = _form_login(auth_server, user, origin="https://evil.example")
    assert status == 403 and "set-cookie" not in headers
    # Our own origin, or none (a script), signs in.
    assert _form_login(auth_server, user, origin=auth_server.url)[0] == 303
    assert _form_login(auth_server, user)[0] == 303


def test_cookie_write_with_origin_null_is_refused(auth_server):
    a = new_tenant(auth_server)
    r = a.post("/api/auth/session")
    cookie = r.headers["Set-Cookie"].split(";", 1)[0]
    base = {"Cookie": cookie, "Content-Type": "application/json"}
    body = json.dumps({"clear": False}).encode()
    assert _post(auth_server, "/api/queue", body, {**base, "Origin": "null"})[0] == 403
    assert _post(auth_server, "/api/queue", body, {**base, "Origin": auth_server.url})[0] == 200
