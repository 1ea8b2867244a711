"""Reads PromptServer.instance.prompt_queue from a node (worker thread) and a route (loop)."""
import threading

from aiohttp import web
from server import PromptServer

STATE = {}


def describe_queue():
    queue = PromptServer.instance.prompt_queue
    running, pending = queue.get_current_queue()
    return {"running": [item[1] for item in running], "pending": [item[1] for item in pending],
            "running_numbers": [item[0] for item in running],
            "remaining": queue.get_tasks_remaining(),
            "history": list(queue.get_history(max_items=5))}


class QueueProbe:
    CATEGORY = "tests/loader"
    RETURN_TYPES = ("STRING",)
    FUNCTION = "run"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"tag": ("STRING", {"default": ""})}}

    @classmethod
    def IS_CHANGED(cls, **kwargs):
        return float("nan")

    def run(self, tag):
        seen = describe_queue()
        seen["own_prompt_id"] = PromptServer.instance.last_prompt_id
        seen["thread"] = threading.current_thread().name
        STATE["seen"] = seen
        import json

        return {"ui": {"text": [json.dumps(seen)]}, "result": (json.dumps(seen),)}


@PromptServer.instance.routes.get("/queue_pack/queue")
async def queue_from_route(request):
    return web.json_response(describe_queue())


@PromptServer.instance.routes.get("/queue_pack/history/{prompt_id}")
async def history_from_route(request):
    return web.json_response(
        PromptServer.instance.prompt_queue.get_history(prompt_id=request.match_info["prompt_id"]))


@PromptServer.instance.routes.post("/queue_pack/wipe")
async def wipe_from_route(request):
    PromptServer.instance.prompt_queue.wipe_queue()
    return web.json_response({"wiped": True})


class QueueSleep:
    """Holds the worker for a while, so that later prompts wait in the queue."""

    CATEGORY = "tests/loader"
    RETURN_TYPES = ("FLOAT",)
    FUNCTION = "run"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"seconds": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 10.0})}}

    def run(self, seconds):
        import time

        time.sleep(seconds)
        return (seconds,)


NODE_CLASS_MAPPINGS = {"QueueProbe": QueueProbe, "QueueSleep": QueueSleep}
