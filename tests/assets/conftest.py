"""Asset servers: each database backend (SQLite, PostgreSQL) with each blob store (local, S3)."""

from __future__ import annotations

import http.server
import threading
import time

import pytest

from tests.assets.factories import SOURCE_FILES
from tests.blobs.s3_server import new_bucket_name, require_s3, server_args
from tests.conftest import _database_url
from tests.harness import Server

STORES = ["local", "s3"]
UPLOAD_LIMIT_MB = "2"


def asset_server_args(store: str) -> tuple[list[str], dict[str, str]]:
    args = ["--max-upload-size", UPLOAD_LIMIT_MB, "--asset-download-host", "127.0.0.1"]
    if store == "s3":
        s3_args, env = server_args(require_s3(), new_bucket_name())
        return args + s3_args, env
    return args, {}


@pytest.fixture(scope="package", params=[(db, store) for db in ("sqlite", "postgres") for store in STORES],
                ids=lambda p: f"{p[0]}-{p[1]}")
def asset_server(request, tmp_path_factory):
    """One server per backend and store for the whole package (modules use their own names and
    tags); downloads may reach 127.0.0.1 (the test source)."""
    backend, store = request.param
    args, env = asset_server_args(store)
    base = tmp_path_factory.mktemp(f"assets-{backend}-{store}")
    srv = Server(base_dir=base, database_url=_database_url(backend), args=args, env=env).start()
    srv.store = store
    yield srv
    srv.stop()


class _SourceHandler(http.server.BaseHTTPRequestHandler):
    """Serves SOURCE_FILES; `/slow/<name>` trickles the body; `/to/<url>` redirects there."""

    def log_message(self, *args):
        pass

    def _send(self, head_only: bool) -> None:
        path = self.path
        if path.startswith("/to/"):
            self.send_response(302)
            self.send_header("Location", path[len("/to/"):])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        path = path.split("?", 1)[0]
        slow = path.startswith("/slow/")
        name = path.split("/")[-1]
        data = SOURCE_FILES.get(name)
        if data is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if head_only:
            return
        step = max(1, len(data) // 20) if slow else len(data)
        try:
            for i in range(0, len(data), step):
                self.wfile.write(data[i:i + step])
                self.wfile.flush()
                if slow:
                    time.sleep(0.08)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def do_GET(self):
        self._send(False)

    def do_HEAD(self):
        self._send(True)


@pytest.fixture(scope="session")
def source():
    """An HTTP server on 127.0.0.1 to download from; yields its base URL."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SourceHandler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
