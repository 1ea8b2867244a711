"""Limits that keep one client from stalling the server: a prompt with very many nodes
validates off the event loop (other requests keep answering), prompts over the node or byte
caps are refused early, and a request body that stalls or trickles is dropped."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from tests.harness import Server

# A node whose validation takes a while (standing in for the CPU time of a huge prompt).
SLOW_PACK = """
import time


class SlowToValidate:
    OUTPUT_NODE = True
    RETURN_TYPES = ()
    FUNCTION = "run"
    CATEGORY = "testing"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"x": ("INT", {"default": 0})}}

    @classmethod
    def VALIDATE_INPUTS(cls, x):
        time.sleep(1.5)
        return True

    def run(self, x):
        return {}


NODE_CLASS_MAPPINGS = {"SlowToValidate": SlowToValidate}
"""

MAX_NODES = 1500


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("limits")
    pack = base / "custom_nodes" / "slow_validation_pack"
    pack.mkdir(parents=True)
    (pack / "__init__.py").write_text(SLOW_PACK)
    srv = Server(base_dir=base, args=["--max-prompt-nodes", str(MAX_NODES), "--max-prompt-bytes", "1",
                                      "--body-read-timeout", "1"]).start()
    yield srv
    srv.stop()


def _big_prompt(nodes: int) -> dict:
    """One slow-to-validate output and `nodes - 1` idle filler nodes."""
    prompt = {"slow": {"class_type": "SlowToValidate", "inputs": {"x": 1}}}
    for i in range(nodes - 1):
        prompt[f"f{i}"] = {"class_type": "EmptyImage",
                           "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": i}}
    return prompt


def test_other_requests_answer_while_a_big_prompt_validates(server):
    answer: dict = {}

    def submit() -> None:
        answer["response"] = server.post("/api/prompt", {"prompt": _big_prompt(MAX_NODES)})

    worker = threading.Thread(target=submit)
    started = time.monotonic()
    worker.start()
    time.sleep(0.4)  # the POST is being validated now
    slowest = 0.0
    while worker.is_alive() and time.monotonic() - started < 1.4:
        t0 = time.monotonic()
        assert server.get("/api/queue").status == 200
        slowest = max(slowest, time.monotonic() - t0)
        time.sleep(0.05)
    worker.join(30)
    assert answer["response"].status == 200, answer["response"].body[:500]
    assert time.monotonic() - started >= 1.5  # the validation did take its time...
    assert slowest < 0.5, slowest  # ...without holding anyone else up


def test_prompts_over_the_caps_are_refused_early(server):
    r = server.post("/api/prompt", {"prompt": _big_prompt(MAX_NODES + 1)})
    assert r.status == 400, r.body[:300]
    assert r.json()["error"]["type"] == "too_many_nodes"
    body = json.dumps({"prompt": _big_prompt(2), "extra_data": {"pad": "x" * (1 << 20)}}).encode()
    r = server.post("/api/prompt", data=body, headers={"Content-Type": "application/json"})
    assert r.status == 413, r.body[:300]
    assert set(r.json()) == {"error", "node_errors"}


def _open_body(server: Server, length: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.sendall((f"POST /api/userdata/slow.bin HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                  f"Content-Type: application/octet-stream\r\nContent-Length: {length}\r\n\r\n").encode())
    return sock


def _dropped_within(sock: socket.socket, seconds: float, trickle: bool = False) -> float:
    """Seconds until the server answers and closes (sending a byte every 0.2 s if trickling)."""
    started = time.monotonic()
    sock.settimeout(0.2)
    received = b""
    while time.monotonic() - started < seconds:
        try:
            chunk = sock.recv(4096)
        except socket.timeout:
            if trickle:
                sock.sendall(b"x")
            continue
        except ConnectionResetError:
            break
        if not chunk:
            break
        received += chunk
    else:
        raise AssertionError(f"still open after {seconds} s")
    assert received == b"" or received.startswith(b"HTTP/1.1 408"), received[:200]
    return time.monotonic() - started


def test_a_stalled_or_trickling_body_is_dropped(server):
    with _open_body(server, 1000) as silent:
        silent.sendall(b"x" * 10)
        assert _dropped_within(silent, 6) >= 0.9
    with _open_body(server, 100_000) as trickler:
        assert _dropped_within(trickler, 6, trickle=True) >= 0.9
    assert server.get("/health").status == 200


def test_a_steady_upload_longer_than_the_timeout_completes(server):
    chunk, chunks = b"y" * 32_768, 40  # 1.3 MB over about 2 s, steadily
    with _open_body(server, len(chunk) * chunks) as sock:
        for _ in range(chunks):
            sock.sendall(chunk)
            time.sleep(0.05)
        sock.settimeout(10)
        head = sock.recv(4096)
    assert head.startswith(b"HTTP/1.1 200"), head[:300]
    assert server.get("/api/userdata/slow.bin").body == chunk * chunks
