"""`auth_server`: a `--auth required` server per test module and database backend
(SQLite always, PostgreSQL when scripts/services.sh started one). Secrets are on."""

from __future__ import annotations

import base64

import pytest

from tests.conftest import _database_url
from tests.harness import Server

SECRETS_KEY_1 = base64.b64encode(bytes(range(32))).decode()
SECRETS_KEY_2 = base64.b64encode(bytes(range(32, 64))).decode()


def start_auth_server(base, backend: str, *args: str, env: dict | None = None) -> Server:
    return Server(base_dir=base, database_url=_database_url(backend),
                  args=["--auth", "required", *args],
                  env={"OPENCOMFY_SECRETS_KEYS": f"k1:{SECRETS_KEY_1}", **(env or {})}).start()


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def auth_server(request, tmp_path_factory):
    srv = start_auth_server(tmp_path_factory.mktemp(f"auth-{request.param}"), request.param)
    yield srv
    srv.stop()
