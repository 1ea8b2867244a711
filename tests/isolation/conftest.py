"""`iso_server`: a `--auth required` server with the test node pack (slow nodes keep jobs
pending or running), per module and backend."""

from __future__ import annotations

import pytest

from tests.identity.fixtures import auth_server, start_auth_server  # noqa: F401  (fixture)
from tests.server.wsutil import install_event_pack


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def iso_server(request, tmp_path_factory):
    base = tmp_path_factory.mktemp(f"iso-{request.param}")
    install_event_pack(base)
    srv = start_auth_server(base, request.param)
    yield srv
    srv.stop()
