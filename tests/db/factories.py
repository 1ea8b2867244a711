"""Test data: prompts of core nodes and submits with sensible defaults."""

from __future__ import annotations

import uuid

from opencomfy.jobs.service import JobService


def tiny_prompt(color: int = 0) -> dict:
    """EmptyImage -> ImageInvert -> PreviewImage, the benchmark's 3-node graph."""
    return {
        "1": {"class_type": "EmptyImage",
              "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": color}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}},
    }


async def submit(jobs: JobService, *, workspace_id: str = "local", color: int = 0, **kw):
    kw.setdefault("outputs_to_execute", ["3"])
    return await jobs.submit(workspace_id=workspace_id, prompt=tiny_prompt(color), **kw)


def image_outputs(node: str = "3", *, kind: str = "temp", name: str = "a.png") -> dict:
    return {node: {"images": [{"filename": name, "subfolder": "", "type": kind}]}}


def new_id() -> str:
    return str(uuid.uuid4())


async def run_to_end(jobs: JobService, *, status: str = "completed", outputs: dict | None = None,
                     worker_id: str = "w1", error: dict | None = None):
    """Claim the next job and finish it as `status`; returns the claimed job."""
    job = await jobs.claim_next_job(worker_id=worker_id, lease_seconds=30)
    assert job is not None
    end_event = {"completed": "execution_success", "failed": "execution_error",
                 "cancelled": "execution_interrupted"}[status]
    messages = [["execution_start", {"prompt_id": job.prompt_id, "timestamp": 1000}],
                [end_event, {"prompt_id": job.prompt_id, "timestamp": 1250}]]
    assert await jobs.finish_job(prompt_id=job.prompt_id, worker_id=worker_id, status=status,
                                 outputs=outputs if outputs is not None else image_outputs(),
                                 meta={}, messages=messages, error=error)
    return job
