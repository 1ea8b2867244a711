"""Start a real opencomfy server in a subprocess and talk to it over HTTP and WebSocket."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postgres_admin_url() -> str | None:
    """Base URL of the PostgreSQL server that .ci/run starts, if any (no database name)."""
    return os.environ.get("OPENCOMFY_TEST_POSTGRES")


def new_postgres_database() -> str:
    """Create an empty database on the test PostgreSQL server; return its SQLAlchemy URL."""
    import asyncio

    import asyncpg

    base = postgres_admin_url()
    assert base, "OPENCOMFY_TEST_POSTGRES is not set"
    name = "t_" + uuid.uuid4().hex[:12]

    async def create() -> None:
        conn = await asyncpg.connect(base.replace("postgresql+asyncpg", "postgresql") + "/postgres")
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(create())
    return f"{base}/{name}"


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Server:
    """A running `python -m opencomfy serve` on a free loopback port."""

    base_dir: Path
    database_url: str | None = None
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def start(self, timeout: float = 60.0) -> "Server":
        self.port = self.port or free_port()
        cmd = [sys.executable, "-m", "opencomfy", "serve", "--port", str(self.port),
               "--base-directory", str(self.base_dir), "--disable-auto-launch", *self.args]
        if self.database_url:
            cmd += ["--database-url", self.database_url]
        env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1", **self.env}
        self.log_path = self.base_dir / f"server-{self.port}.log"
        self.base_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if self.get("/health").status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not become healthy:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-8000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill(self) -> None:
        """kill -9: no chance to clean up."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def request(self, method: str, path: str, body: Any = None, *, data: bytes | None = None,
                headers: dict[str, str] | None = None, timeout: float = 30) -> Response:
        hdrs = dict(headers or {})
        if body is not None:
            data = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return Response(r.status, dict(r.headers), r.read())
        except urllib.error.HTTPError as e:
            return Response(e.code, dict(e.headers), e.read())

    def get(self, path: str, **kw) -> Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: Any = None, **kw) -> Response:
        return self.request("POST", path, body, **kw)

    def cli(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        """Run an admin command (`users create`, `keys create`, ...) against this server's
        database and folders."""
        cmd = [sys.executable, "-m", "opencomfy", *args, "--base-directory", str(self.base_dir)]
        if self.database_url:
            cmd += ["--database-url", self.database_url]
        env = {**os.environ, "PYTHONPATH": str(REPO / "src"), **self.env}
        return subprocess.run(cmd, input=stdin, capture_output=True, text=True, env=env,
                              timeout=60)

    def wait_for_job(self, prompt_id: str, timeout: float = 60) -> dict:
        """Poll /api/history/{id} until the job has finished; return its history entry."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = self.get(f"/api/history/{prompt_id}")
            if r.status == 200 and prompt_id in r.json():
                return r.json()[prompt_id]
            time.sleep(0.05)
        raise TimeoutError(f"job {prompt_id} did not finish:\n{self.log()}")

    def saved_images(self, graph: dict, timeout: float = 240) -> dict[str, Any]:
        """Queue `graph`, require success, and fetch the first image each output node saved:
        `{node id: PIL image in RGB}` (through /api/view, as a client would)."""
        import io

        from PIL import Image

        r = self.post("/api/prompt", {"prompt": graph})
        assert r.status == 200, r.body
        entry = self.wait_for_job(r.json()["prompt_id"], timeout=timeout)
        assert entry["status"]["status_str"] == "success", entry["status"]
        images = {}
        for node_id, output in entry["outputs"].items():
            image = output["images"][0]
            view = self.get(f"/api/view?filename={image['filename']}&subfolder={image['subfolder']}"
                            f"&type={image['type']}")
            assert view.status == 200, view.body
            images[node_id] = Image.open(io.BytesIO(view.body)).convert("RGB")
        return images


def multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes]]) -> tuple[bytes, str]:
    """Encode a multipart/form-data body; returns (body, content type)."""
    boundary = "----opencomfy" + uuid.uuid4().hex
    out = bytearray()
    for name, value in fields.items():
        out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n"
                f"{value}\r\n").encode()
    for name, (filename, content) in files.items():
        out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; "
                f"filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n").encode()
        out += content + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"
