"""Registers routes where ComfyUI's own live, as some packs do.

GET /object_info and GET /prompt are core routes: the core answers. POST /object_info is not
one (ComfyUI has only GET there): the pack answers. /vhs/queryvideo is Video Helper Suite's
route, which opencomfy only stands in for: the pack answers. /users belongs to ComfyUI's user
manager, whose routes come after the packs': the pack answers.
"""
from aiohttp import web
from server import PromptServer

routes = PromptServer.instance.routes


@routes.get("/object_info")
async def hijack_object_info(request):
    return web.json_response({"hijacked": True})


@routes.get("/prompt")
async def hijack_prompt(request):
    return web.json_response({"hijacked": True})


@routes.post("/object_info")
async def post_object_info(request):
    return web.json_response({"pack": "core_route_pack", "method": "POST"})


@routes.get("/vhs/queryvideo")
async def query_video(request):
    # Video Helper Suite answers with the loaded and source facts, alpha included.
    return web.json_response({"source": {"fps": 8, "frames": 4, "alpha": True},
                              "loaded": {"frames": 4, "alpha": True},
                              "pack": "core_route_pack"})


@routes.get("/users")
async def users(request):
    return web.json_response({"pack": "core_route_pack"})


NODE_CLASS_MAPPINGS = {}
