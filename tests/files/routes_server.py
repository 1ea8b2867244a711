"""Real servers shared by the file and userdata tests: one per flag set for the whole run."""

from __future__ import annotations

import pytest

from tests.harness import Server


def start_files_server(base_dir, *args: str) -> Server:
    return Server(base_dir=base_dir, args=list(args)).start()


_shared: dict[tuple, Server] = {}


def shared_files_server(request, *args: str) -> Server:
    """One server per flag set for the whole test session (starting one costs seconds on a
    busy machine); stopped when the session ends. Tests keep to their own file names."""
    key = (id(request.config), args)
    if key not in _shared:
        base = request.getfixturevalue("tmp_path_factory").mktemp("files-server")
        _shared[key] = start_files_server(base, *args)
        request.config.add_cleanup(lambda: _shared.pop(key).stop())
    return _shared[key]


@pytest.fixture(scope="module")
def files_server(request):
    """The shared single-user server."""
    return shared_files_server(request)


@pytest.fixture(scope="module")
def multi_user_server(request):
    """The shared --multi-user server."""
    return shared_files_server(request, "--multi-user")


@pytest.fixture
def make_files_server(tmp_path):
    """Start servers with extra flags (e.g. --multi-user) inside one test."""
    started: list[Server] = []

    def make(*args: str) -> Server:
        srv = start_files_server(tmp_path / f"srv{len(started)}", *args)
        started.append(srv)
        return srv

    yield make
    for srv in started:
        srv.stop()
