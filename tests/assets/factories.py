"""Test data: files to upload or download, and small HTTP helpers for asset servers."""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import time
import uuid
import zipfile

from tests.harness import Server, multipart


def safetensors_bytes(payload: bytes = b"\x00" * 16) -> bytes:
    header = json.dumps({"w": {"dtype": "U8", "shape": [len(payload)],
                               "data_offsets": [0, len(payload)]}}).encode()
    return struct.pack("<Q", len(header)) + header + payload


def pickle_bytes() -> bytes:
    return pickle.dumps({"state_dict": [1, 2, 3]}, protocol=4)


SOURCE_FILES = {
    "model.safetensors": safetensors_bytes(os.urandom(64)),
    "evil.safetensors": pickle_bytes(),       # a pickle dressed as safetensors
    "model.ckpt": pickle_bytes(),
    "big.safetensors": safetensors_bytes(os.urandom(200_000)),
}


def zip_bytes(entries: dict[str, bytes], *, compression=zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as z:
        for name, data in entries.items():
            z.writestr(zipfile.ZipInfo(name), data, compress_type=compression)
    return buf.getvalue()


def unique_bytes(label: str = "") -> bytes:
    return f"{label}-{uuid.uuid4()}".encode() * 3


def upload(srv: Server, data: bytes, *, name: str = "file.bin", tags: str | None = "input",
           **fields: str):
    form = dict(fields)
    if name is not None:
        form.setdefault("name", name)
    if tags is not None:
        form["tags"] = tags
    body, ctype = multipart(form, {"file": (name or "file.bin", data)})
    return srv.post("/api/assets", data=body, headers={"Content-Type": ctype})


def send_json(srv: Server, method: str, path: str, body) -> object:
    return srv.request(method, path, body)


def wait_task(srv: Server, task_id: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        task = srv.get(f"/api/tasks/{task_id}").json()
        if task["status"] in ("completed", "failed"):
            return task
        time.sleep(0.05)
    raise TimeoutError(f"task {task_id} did not finish:\n{srv.log()}")
