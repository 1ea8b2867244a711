"""Failed credential attempts are limited per client address: after N failures in a minute
(API key, bearer, password) the address gets 429 with Retry-After, while other addresses,
successful or not, are not slowed. Clients here connect to 127.0.0.1 from different
loopback source addresses (127.0.0.2, 127.0.0.3) to be different clients."""

from __future__ import annotations

import http.client
import json

from opencomfy.identity.ratelimit import FailureLimiter
from tests.identity.fixtures import start_auth_server
from tests.identity.tenants import create_user, new_tenant

LIMIT = 5


def _request(srv, method: str, path: str, *, source: str, headers: dict | None = None,
             body: dict | None = None) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30, source_address=(source, 0))
    try:
        data = json.dumps(body).encode() if body is not None else None
        hdrs = {**(headers or {}), **({"Content-Type": "application/json"} if data else {})}
        conn.request(method, path, body=data, headers=hdrs)
        resp = conn.getresponse()
        resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}
    finally:
        conn.close()


def test_failed_credentials_are_limited_per_client_address(tmp_path):
    srv = start_auth_server(tmp_path, "sqlite", "--auth-failure-limit", str(LIMIT))
    try:
        a = new_tenant(srv)
        user = create_user(srv, password="right-password")
        key = {"X-API-Key": a.key}
        bad_key = {"X-API-Key": "comfyui-" + "0" * 64}
        bad_bearer = {"Authorization": "Bearer not.a.token"}
        guesser = "127.0.0.2"
        for headers in [bad_key, bad_key, bad_key, bad_bearer, bad_bearer]:
            assert _request(srv, "GET", "/api/queue", source=guesser, headers=headers)[0] == 401
        status, headers = _request(srv, "GET", "/api/queue", source=guesser, headers=bad_key)
        assert status == 429 and 1 <= int(headers["retry-after"]) <= 60
        # Over the limit, the address learns nothing more: a valid key or password waits too.
        assert _request(srv, "GET", "/api/queue", source=guesser, headers=key)[0] == 429
        body = {"email": user.email, "password": "right-password"}
        assert _request(srv, "POST", "/login", source=guesser, body=body)[0] == 429
        # Another address is not slowed by those failures, for a success or a failure.
        assert _request(srv, "GET", "/api/queue", source="127.0.0.1", headers=key)[0] == 200
        assert _request(srv, "GET", "/api/queue", source="127.0.0.1", headers=bad_key)[0] == 401
        # Wrong passwords count against the address too.
        other = "127.0.0.3"
        for i in range(LIMIT):
            wrong = {"email": user.email, "password": f"guess-{i}"}
            assert _request(srv, "POST", "/login", source=other, body=wrong)[0] == 401
        assert _request(srv, "GET", "/api/queue", source=other, headers=bad_key)[0] == 429
        assert _request(srv, "GET", "/api/queue", source="127.0.0.1", headers=key)[0] == 200
    finally:
        srv.stop()


def test_failure_limiter_window():
    now = [1000.0]
    limiter = FailureLimiter(limit=3, window_s=60, clock=lambda: now[0])
    for _ in range(3):
        assert limiter.wait("a") == 0
        limiter.record("a")
        now[0] += 1
    assert limiter.wait("a") == 57  # now 1003; the first failure leaves the window at 1060
    assert limiter.wait("b") == 0  # another address is untouched
    now[0] = 1060.0
    assert limiter.wait("a") == 0  # one failure left the window: one more try
    limiter.record("a")
    assert limiter.wait("a") > 0
    assert FailureLimiter(limit=0).wait("a") == 0  # 0 turns it off
