"""Helpers for the prompt / queue / history / jobs route tests: a server with the test node
pack (its TestSlowImage keeps the worker busy, so jobs stay pending), and waits."""

from __future__ import annotations

import random
import time
import uuid
from typing import Any

from tests.harness import Server
from tests.server.wsutil import database_url, image_graph, server_with_pack

__all__ = ["database_url", "server_with_pack", "graph", "slow_graph", "queue", "wait_status",
           "wait_idle", "new_id", "prompt_error_shape", "Blocker"]


def new_id() -> str:
    return str(uuid.uuid4())


def graph(*, save: bool = False, prefix: str = "q") -> dict:
    """EmptyImage -> ImageInvert -> PreviewImage (or SaveImage), a new colour each time."""
    return image_graph(random.randrange(1 << 24), prefix=prefix, save=save)


def slow_graph(seconds: float = 30) -> dict:
    return image_graph(random.randrange(1 << 24), slow=seconds, save=False)


def queue(server: Server, prompt: dict | None = None, **body: Any) -> str:
    r = server.post("/api/prompt", {"prompt": prompt or graph(), **body})
    assert r.status == 200, r.body
    return r.json()["prompt_id"]


def job_status(server: Server, prompt_id: str) -> str | None:
    r = server.get(f"/api/jobs/{prompt_id}")
    return r.json()["status"] if r.status == 200 else None


def wait_status(server: Server, prompt_id: str, *wanted: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while (status := job_status(server, prompt_id)) not in wanted:
        assert time.monotonic() < deadline, f"{prompt_id} is {status}, not {wanted}\n{server.log()}"
        time.sleep(0.03)
    return status


def wait_idle(server: Server, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while server.get("/api/prompt").json()["exec_info"]["queue_remaining"]:
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.03)


def prompt_error_shape(r) -> dict:
    """Assert ComfyUI's /prompt error shape; return the error object."""
    assert r.status == 400, (r.status, r.body)
    body = r.json()
    assert set(body) == {"error", "node_errors"}
    assert {"type", "message", "details", "extra_info"} <= set(body["error"])
    return body["error"]


class Blocker:
    """Occupies the worker with a slow job, so that jobs queued meanwhile stay pending."""

    def __init__(self, server: Server, seconds: float = 60) -> None:
        self.server = server
        self.prompt_id = queue(server, slow_graph(seconds))
        wait_status(server, self.prompt_id, "in_progress")

    def release(self) -> None:
        self.server.post("/api/interrupt", {"prompt_id": self.prompt_id})
        wait_status(self.server, self.prompt_id, "cancelled", "completed", "failed")

    def __enter__(self) -> "Blocker":
        return self

    def __exit__(self, *exc) -> None:
        self.server.post("/api/queue", {"clear": True})
        self.release()
