"""Shared fixtures: real servers on SQLite (always) and PostgreSQL (when .ci/run started one)."""

from __future__ import annotations

import pytest

from tests.harness import Server, new_postgres_database, postgres_admin_url

BACKENDS = ["sqlite", "postgres"]


def _database_url(backend: str) -> str | None:
    if backend == "sqlite":
        return None
    if not postgres_admin_url():
        pytest.skip("no PostgreSQL server (set OPENCOMFY_TEST_POSTGRES; .ci/run does)")
    return new_postgres_database()


@pytest.fixture(scope="module", params=BACKENDS)
def server(request, tmp_path_factory):
    """One server per test module and database backend; tests share its queue and files."""
    base = tmp_path_factory.mktemp(f"server-{request.param}")
    srv = Server(base_dir=base, database_url=_database_url(request.param)).start()
    yield srv
    srv.stop()


@pytest.fixture
def make_server(tmp_path):
    """Start extra servers with custom arguments inside one test; all are stopped after it."""
    started: list[Server] = []

    def make(*args: str, backend: str = "sqlite", base_dir=None, **kw) -> Server:
        srv = Server(base_dir=base_dir or tmp_path / f"srv{len(started)}",
                     database_url=_database_url(backend), args=list(args), **kw)
        started.append(srv)
        return srv.start()

    yield make
    for srv in started:
        srv.stop()
