"""Serve only the file and userdata routes, in a thread, behind the harness's Server API.

Used until the whole server (engine, jobs, catalogue ...) starts; then `files_server` picks
the real `python -m opencomfy serve` and the same tests drive it unchanged.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import threading
from dataclasses import dataclass

import pytest

from opencomfy.cli import build_parser, config_from_args
from tests.harness import Server, free_port


def full_server_available() -> bool:
    """True once every piece `python -m opencomfy serve` needs exists.

    OPENCOMFY_FILES_TESTS=standalone|server forces one or the other.
    """
    forced = os.environ.get("OPENCOMFY_FILES_TESTS")
    if forced:
        return forced == "server"
    needed = {"opencomfy.engine": "Engine", "opencomfy.nodes.setup": "build_registry",
              "opencomfy.jobs.service": "JobService", "opencomfy.jobs.worker": "EmbeddedWorker",
              "opencomfy.catalogue": "Catalogue", "opencomfy.http.prompt": "setup",
              "opencomfy.http.ws": "setup", "opencomfy.http.system": "setup",
              "opencomfy.http.internal": "setup", "opencomfy.http.frontend": "setup"}
    for module, name in needed.items():
        try:
            if importlib.util.find_spec(module) is None:
                return False
        except ModuleNotFoundError:
            return False
        source = importlib.util.find_spec(module).origin or ""
        try:
            text = open(source, encoding="utf-8").read() if source.endswith(".py") else ""
        except OSError:
            return False
        if name not in text:
            return False
    return True


_folder_paths_owner: "RoutesServer | None" = None


@dataclass
class RoutesServer(Server):
    """Our routes only, in-process on a real port (same request API as the real server)."""

    def start(self, timeout: float = 30.0) -> "RoutesServer":
        from aiohttp import web

        from opencomfy.compat import folder_paths
        from opencomfy.http import files, userdata
        from opencomfy.http.errors import error_middleware
        from opencomfy.http.routing import SERVICES
        from opencomfy.services import Services

        self.port = self.port or free_port()
        args = build_parser().parse_args(["serve", "--base-directory", str(self.base_dir),
                                          "--port", str(self.port), *self.args])
        config = config_from_args(args)
        for folder in (config.output_dir, config.input_dir, config.temp_dir, config.user_dir,
                       config.models_dir):
            folder.mkdir(parents=True, exist_ok=True)
        # folder_paths is process-wide: the first in-process server owns it (the real
        # server, one process each, has no such limit).
        global _folder_paths_owner
        if _folder_paths_owner is None:
            _folder_paths_owner = self
            folder_paths.configure(base_directory=config.base_directory,
                                   output_directory=str(config.output_dir),
                                   input_directory=str(config.input_dir),
                                   temp_directory=str(config.temp_dir),
                                   user_directory=str(config.user_dir))
        app = web.Application(client_max_size=config.max_upload_bytes, middlewares=[error_middleware])
        app[SERVICES] = Services(config=config, db=None, bus=None, registry=None, catalogue=None,
                                 jobs=None, worker=None)
        files.setup(app)
        userdata.setup(app)
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()

        async def run() -> None:
            self._runner = web.AppRunner(app)
            await self._runner.setup()
            await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
            ready.set()

        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(run(), self._loop)
        if not ready.wait(timeout):
            raise RuntimeError("routes server did not start")
        return self

    def stop(self) -> None:
        if getattr(self, "_loop", None) is None:
            return
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
        self._loop = None

    def log(self) -> str:
        return ""


def start_files_server(base_dir, *args: str) -> Server:
    """The real server when it can start, else our routes alone."""
    cls = Server if full_server_available() else RoutesServer
    return cls(base_dir=base_dir, args=list(args)).start()


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
