"""Helpers for the websocket, worker and crash tests: servers with the test node pack,
ComfyUI graphs of core nodes, and a websocket-client reader."""

from __future__ import annotations

import json
import shutil
import struct
import time
import uuid
from pathlib import Path
from typing import Any, Callable

import pytest
import websocket

from tests.harness import Server, new_postgres_database, postgres_admin_url

EVENT_PACK = Path(__file__).resolve().parent / "event_pack"


def database_url(backend: str) -> str | None:
    if backend == "sqlite":
        return None
    if not postgres_admin_url():
        pytest.skip("no PostgreSQL server (set OPENCOMFY_TEST_POSTGRES; .ci/run does)")
    return new_postgres_database()


def install_event_pack(base_dir: Path) -> None:
    target = base_dir / "custom_nodes" / "event_pack"
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        shutil.copytree(EVENT_PACK, target, ignore=shutil.ignore_patterns("__pycache__"))


def server_with_pack(base_dir: Path, database: str | None) -> Server:
    install_event_pack(base_dir)
    return Server(base_dir=base_dir, database_url=database)


def image_graph(color: int, *, prefix: str = "ws", slow: float | None = None,
                burst: tuple[int, int] | None = None, save: bool = True) -> dict:
    """EmptyImage(1) -> [TestSlowImage(4)] -> [TestPreviewBurst(5)] -> ImageInvert(2) ->
    SaveImage(3) (or PreviewImage). `color` makes each prompt distinct (no cache hits)."""
    graph: dict[str, Any] = {
        "1": {"class_type": "EmptyImage",
              "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": color}},
    }
    upstream = ["1", 0]
    if slow is not None:
        graph["4"] = {"class_type": "TestSlowImage", "inputs": {"image": upstream, "seconds": slow}}
        upstream = ["4", 0]
    if burst is not None:
        steps, payload_kb = burst
        graph["5"] = {"class_type": "TestPreviewBurst",
                      "inputs": {"image": upstream, "steps": steps, "payload_kb": payload_kb}}
        upstream = ["5", 0]
    graph["2"] = {"class_type": "ImageInvert", "inputs": {"image": upstream}}
    if save:
        graph["3"] = {"class_type": "SaveImage",
                      "inputs": {"images": ["2", 0], "filename_prefix": prefix}}
    else:
        graph["3"] = {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}}
    return graph


def queue_prompt(server: Server, graph: dict, client_id: str | None = None, **extra) -> str:
    body: dict[str, Any] = {"prompt": graph, **extra}
    if client_id is not None:
        body["client_id"] = client_id
    r = server.post("/api/prompt", body)
    assert r.status == 200, r.body
    return r.json()["prompt_id"]


class Client:
    """A websocket-client connection that keeps every message it has read."""

    def __init__(self, server: Server, client_id: str | None = None, *,
                 flags: dict | None = None, timeout: float = 20) -> None:
        url = server.ws_url + (f"?clientId={client_id}" if client_id else "")
        self.ws = websocket.create_connection(url, timeout=timeout)
        if flags is not None:
            self.ws.send(json.dumps({"type": "feature_flags", "data": flags}))
        self.messages: list[dict | bytes] = []

    def recv(self) -> dict | bytes:
        raw = self.ws.recv()
        msg = json.loads(raw) if isinstance(raw, str) else raw
        self.messages.append(msg)
        return msg

    def until(self, predicate: Callable[[dict | bytes], bool], timeout: float = 30) -> list:
        """Read until a message matches; return everything read on the way (it included)."""
        start = len(self.messages)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.recv()):
                return self.messages[start:]
        raise TimeoutError(f"no matching message; got {self.messages[start:][-5:]}")

    def until_done(self, prompt_id: str, timeout: float = 30) -> list:
        return self.until(lambda m: is_final(m, prompt_id), timeout)

    def close(self) -> None:
        self.ws.close()


def is_final(msg: dict | bytes, prompt_id: str) -> bool:
    return (isinstance(msg, dict) and msg["type"] == "executing"
            and msg["data"].get("node") is None and msg["data"].get("prompt_id") == prompt_id)


def json_events(messages: list, prompt_id: str | None = None) -> list[dict]:
    out = [m for m in messages if isinstance(m, dict)]
    if prompt_id is not None:
        out = [m for m in out if m["type"] == "status" or m["data"].get("prompt_id") == prompt_id]
    return out


def binary_type(frame: bytes) -> int:
    return struct.unpack(">I", frame[:4])[0]


def new_id() -> str:
    return uuid.uuid4().hex
