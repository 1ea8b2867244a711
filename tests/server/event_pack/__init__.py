"""A V1 custom-node pack for the websocket, worker and crash tests (copied into a test
server's <base>/custom_nodes). It uses only ComfyUI's custom-node API."""

import os
import time

import comfy.model_management
import comfy.utils
from server import PromptServer


class TestSlowImage:
    """Passes an image through after sleeping (interruptible), so a kill lands mid-run."""

    CATEGORY = "testing"
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",),
                             "seconds": ("FLOAT", {"default": 0.2, "min": 0.0, "max": 120.0})}}

    def run(self, image, seconds):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            comfy.model_management.throw_exception_if_processing_interrupted()
            time.sleep(min(0.02, max(0.0, deadline - time.monotonic())))
        return (image,)


class TestPreviewBurst:
    """Reports `steps` progress updates, each with a preview and a progress text.

    `payload_kb` > 0 sends that many random bytes as each (JPEG-labelled) preview, cheap to
    make in bulk; 0 sends a real 64x64 PNG built from the input image.
    """

    CATEGORY = "testing"
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",),
                             "steps": ("INT", {"default": 3, "min": 1, "max": 10000}),
                             "payload_kb": ("INT", {"default": 0, "min": 0, "max": 4096})},
                "hidden": {"unique_id": "UNIQUE_ID"}}

    def run(self, image, steps, payload_kb, unique_id=None):
        if payload_kb:
            preview = ("JPEG", os.urandom(payload_kb * 1024), 512)
        else:
            from PIL import Image

            pixels = (image[0].clamp(0, 1) * 255).byte().cpu().numpy()
            preview = ("PNG", Image.fromarray(pixels).resize((64, 64)), 512)
        bar = comfy.utils.ProgressBar(steps)
        for step in range(steps):
            PromptServer.instance.send_progress_text(f"step {step + 1}/{steps}", unique_id)
            bar.update_absolute(step + 1, steps, preview)
        return (image,)


class TestRaise:
    """Raises when it runs: a node failure must end the prompt, never the worker."""

    CATEGORY = "testing"
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",), "message": ("STRING", {"default": "boom"})}}

    def run(self, image, message):
        if message == "SystemExit":  # a pack that calls sys.exit() must not end the worker
            raise SystemExit(3)
        raise ValueError(message)


@PromptServer.instance.routes.post("/event_pack/ping")
async def ping(request):
    """Sends `event_pack.pong` outside any run: to `sid` when given, else to everyone."""
    from aiohttp import web

    body = await request.json()
    PromptServer.instance.send_sync("event_pack.pong", {"n": body.get("n")}, body.get("sid"))
    return web.json_response({"sent": True})


@PromptServer.instance.routes.post("/event_pack/stop")
async def stop(request):
    """Interrupts whatever runs, the way packs do it from their own routes."""
    from aiohttp import web

    comfy.model_management.interrupt_current_processing()
    return web.json_response({"stopped": True})


NODE_CLASS_MAPPINGS = {"TestSlowImage": TestSlowImage, "TestPreviewBurst": TestPreviewBurst,
                       "TestRaise": TestRaise}
NODE_DISPLAY_NAME_MAPPINGS = {"TestSlowImage": "Slow image (test)",
                              "TestPreviewBurst": "Preview burst (test)",
                              "TestRaise": "Raise (test)"}
