"""The per-credential request rate limit: 429 with Retry-After, per credential."""

from __future__ import annotations

from tests.identity.fixtures import start_auth_server
from tests.identity.tenants import new_tenant


def test_rate_limit_per_credential(tmp_path):
    srv = start_auth_server(tmp_path, "sqlite", "--rate-limit", "60", "--rate-limit-burst", "5")
    try:
        a, b = new_tenant(srv), new_tenant(srv)
        statuses = [a.get("/api/queue").status for _ in range(8)]
        assert statuses[:3] == [200, 200, 200] and statuses[-1] == 429
        r = a.get("/api/queue")
        assert r.status == 429 and r.json()["code"] == "rate_limited"
        assert 1 <= int(r.headers["Retry-After"]) <= 60
        # Another credential has its own budget; public routes are not limited.
        assert b.get("/api/queue").status == 200
        assert all(srv.get("/health").status == 200 for _ in range(10))
    finally:
        srv.stop()
