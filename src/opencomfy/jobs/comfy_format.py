"""The ComfyUI wire adapter: queue 5-tuples, history entries and jobs-API dicts.

Rows come from `queue_sql`; their JSON columns hold text we wrote ourselves, so the hot views
(/queue, /history) splice that text into the response instead of decoding and re-encoding
every prompt. Everything here is about ComfyUI's shapes; nothing here touches the database.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, Iterable, Sequence

from opencomfy.jobs import transitions as tr
from opencomfy.jobs.records import OutputSummary

END_EVENTS = ("execution_success", "execution_error", "execution_interrupted")

# Output keys of a node's UI dict that hold media, and the jobs API's media type of each.
_MEDIA_KEYS = {"images": "image", "video": "video", "gifs": "video", "videos": "video",
               "audio": "audio", "3d": "3d", "mesh": "3d", "model_3d": "3d"}
_THREE_D_EXT = (".obj", ".fbx", ".gltf", ".glb", ".usdz", ".stl", ".ply")
_VIDEO_EXT = (".mp4", ".webm", ".mov", ".mkv", ".avi", ".gif")
_AUDIO_EXT = (".mp3", ".wav", ".flac", ".ogg", ".opus", ".m4a", ".aac")


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)


def number_json(number: float) -> str:
    """ComfyUI's counter numbers are ints: show integral numbers without a fraction."""
    if number == int(number) and abs(number) < 2**53:
        return str(int(number))
    return repr(float(number))


def number_value(number: float) -> float | int:
    return int(number) if number == int(number) and abs(number) < 2**53 else float(number)


# ----------------------------------------------------------------------------- submit side

def workflow_id_of(extra_data: dict) -> str | None:
    """The frontend's workflow id, as the jobs API reports it (extra_pnginfo.workflow.id)."""
    pnginfo = extra_data.get("extra_pnginfo")
    if isinstance(pnginfo, dict) and isinstance(pnginfo.get("workflow"), dict):
        wid = pnginfo["workflow"].get("id")
        if isinstance(wid, (str, int)) and not isinstance(wid, bool) and len(str(wid)) <= 255:
            return str(wid)
    return None


def message_time(messages: Sequence, events: Iterable[str], *, last: bool = False) -> int | None:
    """The `timestamp` of the first (or last) status message among `events`."""
    events = tuple(events)
    found = None
    for item in messages:
        if len(item) == 2 and item[0] in events and isinstance(item[1], dict):
            ts = item[1].get("timestamp")
            if isinstance(ts, (int, float)):
                found = int(ts)
                if not last:
                    return found
    return found


def synthetic_error(*, prompt_id: str, message: str, timestamp: int) -> dict:
    """An execution_error payload for a job that failed outside the engine (restart, stall)."""
    return {"prompt_id": prompt_id, "node_id": "", "node_type": "", "executed": [],
            "exception_message": message, "exception_type": "JobLost", "traceback": [],
            "current_inputs": {}, "current_outputs": {}, "timestamp": timestamp}


def _media_type(key: str, item: dict) -> str | None:
    fmt = item.get("format")
    if isinstance(fmt, str):
        if fmt.startswith("video/"):
            return "video"
        if fmt.startswith("audio/"):
            return "audio"
    name = str(item.get("filename", "")).lower()
    if key in _MEDIA_KEYS:
        if key == "images" and name.endswith(_VIDEO_EXT[:-1]):
            return "video"
        return _MEDIA_KEYS[key]
    if name.endswith(_THREE_D_EXT):
        return "3d"
    if name.endswith(_VIDEO_EXT):
        return "video"
    if name.endswith(_AUDIO_EXT):
        return "audio"
    return None


def summarize_outputs(outputs: dict) -> OutputSummary:
    """Count output items and pick the preview: an output-folder media item first, then any
    other media (temp previews), then a text output."""
    count = previewable = 0
    best = fallback = text_preview = None
    types: set[str] = set()
    for node_id, ui in outputs.items():
        if not isinstance(ui, dict):
            continue
        for key, items in ui.items():
            if key == "animated" or not isinstance(items, list):
                continue
            for item in items:
                if isinstance(item, str):
                    count += 1
                    if text_preview is None and key == "text":
                        text_preview = {"content": item, "nodeId": node_id, "mediaType": "text"}
                    continue
                if not isinstance(item, dict):
                    continue
                count += 1
                media = _media_type(key, item)
                if media is None:
                    continue
                previewable += 1
                types.add(media)
                enriched = {**item, "nodeId": node_id, "mediaType": key}
                if item.get("type") == "output" and best is None:
                    best = enriched
                elif fallback is None:
                    fallback = enriched
    return OutputSummary(count=count, previewable=previewable,
                         preview=best or fallback or text_preview, media_types=frozenset(types))


# ---------------------------------------------------------------------------- queue tuples

def queue_item_json(row) -> str:
    """`[number, prompt_id, prompt, extra_data, outputs_to_execute]`, as ComfyUI's /queue."""
    return (f"[{number_json(row.number)},{json.dumps(row.id)},{row.prompt},"
            f"{row.extra_data},{row.outputs_to_execute}]")


def queue_json(running: Sequence, pending: Sequence) -> str:
    return ('{"queue_running":[' + ",".join(map(queue_item_json, running))
            + '],"queue_pending":[' + ",".join(map(queue_item_json, pending)) + "]}")


# --------------------------------------------------------------------------------- history

def _status_json(row) -> str:
    ok = row.status == tr.COMPLETED
    return ('{"status_str":' + ('"success"' if ok else '"error"')
            + ',"completed":' + ("true" if ok else "false")
            + ',"messages":' + (row.messages or "[]") + "}")


def history_entry_json(row) -> str:
    """One ComfyUI history entry `{prompt: [...5], outputs, status, meta}`."""
    return ('{"prompt":' + queue_item_json(row) + ',"outputs":' + (row.outputs or "{}")
            + ',"status":' + _status_json(row) + ',"meta":' + (row.meta or "{}") + "}")


def history_json(rows: Sequence) -> str:
    """`{prompt_id: entry}` in the rows' order."""
    return "{" + ",".join(json.dumps(r.id) + ":" + history_entry_json(r) for r in rows) + "}"


def _status_dict(row) -> dict:
    ok = row.status == tr.COMPLETED
    return {"status_str": "success" if ok else "error", "completed": ok,
            "messages": json.loads(row.messages or "[]")}


def _without_workflow(extra_data: dict) -> dict:
    pnginfo = extra_data.get("extra_pnginfo")
    if isinstance(pnginfo, dict) and "workflow" in pnginfo:
        extra_data = {**extra_data, "extra_pnginfo": {k: v for k, v in pnginfo.items() if k != "workflow"}}
    return extra_data


def history_v2_entry(row) -> dict:
    """The spec's HistoryEntry: lightweight, workflow removed from extra_pnginfo."""
    entry = {
        "prompt_id": row.id,
        "create_time": row.create_time,
        "prompt": {"priority": number_value(row.number), "prompt_id": row.id,
                   "extra_data": _without_workflow(json.loads(row.extra_data))},
        "outputs": json.loads(row.outputs or "{}"),
        "status": _status_dict(row),
        "meta": json.loads(row.meta or "{}"),
    }
    if row.workflow_id:
        entry["workflow_id"] = row.workflow_id
    return entry


def history_v2_detail(row) -> dict:
    """The spec's HistoryDetailEntry: the full prompt as an object."""
    return {
        "prompt": {"priority": number_value(row.number), "prompt_id": row.id,
                   "prompt": json.loads(row.prompt), "extra_data": json.loads(row.extra_data),
                   "outputs_to_execute": json.loads(row.outputs_to_execute)},
        "outputs": json.loads(row.outputs or "{}"),
        "status": _status_dict(row),
        "meta": json.loads(row.meta or "{}"),
    }


# -------------------------------------------------------------------------------- jobs API

def job_entry(row) -> dict:
    """A jobs-API list entry (ComfyUI's pruned job dict, the spec's JobEntry)."""
    job: dict[str, Any] = {"id": row.id, "status": row.status,
                           "priority": number_value(row.number), "create_time": row.create_time}
    if row.workflow_id:
        job["workflow_id"] = row.workflow_id
    if row.status in tr.TERMINAL:
        if row.start_time is not None:
            job["execution_start_time"] = row.start_time
        if row.end_time is not None:
            job["execution_end_time"] = row.end_time
        job["outputs_count"] = row.outputs_count or 0
        job["previewable_outputs_count"] = row.previewable_count or 0
        if row.preview_output:
            job["preview_output"] = json.loads(row.preview_output)
        if row.status == tr.FAILED and row.error:
            job["execution_error"] = execution_error(json.loads(row.error))
    return job


def execution_error(payload: dict) -> dict:
    """The spec's ExecutionError: every required field present."""
    return {
        "node_id": str(payload.get("node_id") or ""),
        "node_type": str(payload.get("node_type") or ""),
        "exception_message": str(payload.get("exception_message") or ""),
        "exception_type": str(payload.get("exception_type") or ""),
        "traceback": list(payload.get("traceback") or []),
        "current_inputs": payload.get("current_inputs") or {},
        "current_outputs": payload.get("current_outputs") or {},
    }


def job_detail(row) -> dict:
    """GET /jobs/{id}: the list entry plus outputs, status timeline and the workflow."""
    job = job_entry(row)
    job["update_time"] = row.update_time
    job["workflow"] = {"prompt": json.loads(row.prompt), "extra_data": json.loads(row.extra_data)}
    job["outputs_to_execute"] = json.loads(row.outputs_to_execute)
    if row.status in tr.TERMINAL:
        job["outputs"] = json.loads(row.outputs or "{}")
        job["execution_status"] = _status_dict(row)
        job["execution_meta"] = json.loads(row.meta or "{}")
    return job


def _rfc3339(ms: int | None) -> str | None:
    if ms is None:
        return None
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.timezone.utc).isoformat().replace("+00:00", "Z")


# The deprecated status route has its own vocabulary (failed -> error).
_LEGACY_STATUS = {tr.FAILED: "error"}


def job_status(row) -> dict:
    """GET /job/{id}/status: the spec's JobStatusResponse (RFC 3339 times)."""
    return {
        "id": row.id,
        "status": _LEGACY_STATUS.get(row.status, row.status),
        "created_at": _rfc3339(row.create_time),
        "updated_at": _rfc3339(row.update_time),
        "last_state_update": _rfc3339(row.update_time),
        "error_message": row.error_message if row.status == tr.FAILED else None,
        "assigned_inference": None,
    }
