"""History windows (exactly ComfyUI's) and the jobs listing, paged in the database."""

from __future__ import annotations

import pytest

from opencomfy.jobs import comfy_format as cf
from tests.db.factories import image_outputs, run_to_end, submit


def comfy_window(items: list, max_items, offset) -> list:
    """ComfyUI's get_history over an ordered list, as a reference to compare against."""
    offset = -1 if offset is None else offset
    if offset < 0 and max_items is not None:
        offset = len(items) - max_items
    out = []
    for i, item in enumerate(items):
        if i >= offset:
            out.append(item)
            if max_items is not None and len(out) >= max_items:
                break
    return out


@pytest.fixture
async def finished(jobs):
    """Seven finished jobs, in completion order."""
    ids = []
    for i in range(7):
        await submit(jobs, color=i)
        ids.append((await run_to_end(jobs)).prompt_id)
    return ids


@pytest.mark.parametrize("max_items,offset", [
    (None, None), (3, None), (3, -1), (10, None), (3, 0), (3, 2), (3, 6), (3, 7), (None, 4),
    (0, None), (0, 2), (-2, None), (-2, 1), (2, -5), (None, -3),
])
async def test_history_windows_match_comfyui(jobs, finished, max_items, offset):
    rows = await jobs.history_page(workspace_id="local", max_items=max_items, offset=offset)
    assert [r.id for r in rows] == comfy_window(finished, max_items, offset)


async def test_history_excludes_queued_jobs_and_forgets_on_delete(jobs, finished):
    queued = await submit(jobs)
    assert await jobs.history_entry(workspace_id="local", prompt_id=queued.prompt_id) is None
    assert await jobs.delete_history(workspace_id="local", prompt_ids=[finished[0], queued.prompt_id]) == 1
    rows = await jobs.history_page(workspace_id="local", max_items=None, offset=None)
    assert [r.id for r in rows] == finished[1:]
    assert await jobs.delete_history(workspace_id="local", prompt_ids=None) == 6
    assert await jobs.history_page(workspace_id="local", max_items=None, offset=None) == []
    assert await jobs.queue_remaining(workspace_id="local") == 1  # the queue is untouched


async def test_history_newest_first_pages(jobs, finished):
    rows = await jobs.history_page_newest_first(workspace_id="local", offset=2, limit=3)
    assert [r.id for r in rows] == list(reversed(finished))[2:5]


async def test_jobs_filters_sort_and_pagination(jobs):
    done = []
    for i in range(3):
        await submit(jobs, color=i, extra_data={"extra_pnginfo": {"workflow": {"id": "wf-x"}}})
        done.append((await run_to_end(jobs, outputs=image_outputs(kind="output"))).prompt_id)
    await submit(jobs)
    failed = (await run_to_end(jobs, status="failed", outputs={})).prompt_id
    pending = [(await submit(jobs)).prompt_id for _ in range(2)]

    page = await jobs.list_jobs(workspace_id="local", limit=2)
    assert page.total == 6 and [r.id for r in page.rows] == pending[::-1]
    page = await jobs.list_jobs(workspace_id="local", offset=3, limit=2, descending=False)
    assert [r.id for r in page.rows] == [failed, pending[0]]
    page = await jobs.list_jobs(workspace_id="local", statuses=["completed", "failed"])
    assert {r.id for r in page.rows} == {*done, failed}
    page = await jobs.list_jobs(workspace_id="local", workflow_id="wf-x")
    assert {r.id for r in page.rows} == set(done)
    assert all(cf.job_entry(r)["workflow_id"] == "wf-x" for r in page.rows)
    page = await jobs.list_jobs(workspace_id="local", output_type="image")
    assert {r.id for r in page.rows} == set(done)
    assert (await jobs.list_jobs(workspace_id="local", output_type="video")).total == 0
    page = await jobs.list_jobs(workspace_id="local", statuses=["completed"],
                                sort_by="execution_time", limit=1, offset=1)
    assert page.total == 3 and len(page.rows) == 1


def test_output_summary_prefers_saved_media():
    outputs = {
        "5": {"text": ["hello"]},
        "3": {"images": [{"filename": "t.png", "subfolder": "", "type": "temp"}]},
        "9": {"images": [{"filename": "o.png", "subfolder": "", "type": "output"}],
              "animated": [False]},
        "7": {"video": [{"filename": "v.mp4", "subfolder": "", "type": "output", "format": "video/h264-mp4"}]},
    }
    summary = cf.summarize_outputs(outputs)
    assert summary.count == 4 and summary.previewable == 3
    assert summary.preview == {"filename": "o.png", "subfolder": "", "type": "output",
                               "nodeId": "9", "mediaType": "images"}
    assert summary.media_types == {"image", "video"}
    assert cf.summarize_outputs({"5": {"text": ["hi"]}}).preview["mediaType"] == "text"
