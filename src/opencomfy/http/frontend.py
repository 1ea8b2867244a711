"""The web frontend and the static trees around it.

- `/` and everything under it: the pinned `comfyui-frontend-package` (or --front-end-root);
- `/extensions/<pack>/...`: each custom node pack's WEB_DIRECTORY;
- `/user.css`: the user's stylesheet (empty when they have none);
- `/templates/...`: workflow templates (`comfyui-workflow-templates-core` and `-json`);
- `/docs/...`: node documentation (`comfyui-embedded-docs`).

These routes are registered last: the frontend's static route at `/` matches everything.
"""

from __future__ import annotations

import functools
import importlib.resources
import io
import logging
import re
from pathlib import Path

from aiohttp import web

from opencomfy.http.packs import confined_file, frontend_root
from opencomfy.http.routing import services_of

log = logging.getLogger(__name__)

_NO_CACHE = {"Cache-Control": "no-cache"}
#: A build file named by its content hash (`index-B2rHQ9Sn.js`).
_HASHED_NAME = re.compile(r"-[A-Za-z0-9_-]{8}\.[a-z0-9]+$")


def _package_dir(package: str, *parts: str) -> Path | None:
    try:
        path = Path(str(importlib.resources.files(package).joinpath(*parts)))
    except (ModuleNotFoundError, TypeError):
        return None
    return path if path.is_dir() else None


def templates_dir() -> Path | None:
    """The folder of template JSON files and their index (`comfyui-workflow-templates-json`)."""
    return _package_dir("comfyui_workflow_templates_json", "templates")


def docs_dir() -> Path | None:
    """`<NodeClass>/<lang>.md` node documentation (`comfyui-embedded-docs`)."""
    return _package_dir("comfyui_embedded_docs", "docs")


#: Image kinds of template thumbnails that get a placeholder when their media is missing.
_THUMBNAIL_SUFFIXES = (".webp", ".png", ".jpg", ".jpeg")


@functools.cache
def _template_assets() -> dict[str, str]:
    """`{asset file name: template id}` from the templates manifest."""
    try:
        from comfyui_workflow_templates_core import iter_templates
    except ImportError:
        return {}
    return {asset.filename: entry.template_id
            for entry in iter_templates() for asset in entry.assets}


def _template_media(name: str) -> Path | None:
    """A template's thumbnail or media file, from whichever media package holds it."""
    template_id = _template_assets().get(name)
    if template_id is None:
        return None
    from comfyui_workflow_templates_core import get_asset_path

    try:
        path = Path(get_asset_path(template_id, name))
    except (KeyError, FileNotFoundError, ModuleNotFoundError, ValueError):
        return None
    return path if path.is_file() else None


@functools.cache
def _placeholder_thumbnail() -> bytes:
    """A plain dark tile, the size of the template browser's cards."""
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (256, 256), (38, 38, 42)).save(out, format="WEBP", quality=60)
    return out.getvalue()


async def get_template_file(request: web.Request) -> web.StreamResponse:
    """A file of the workflow templates (index.json, a template, or its media).

    Thumbnails live in optional media packages (hundreds of MB). Without them, a thumbnail
    the manifest names is answered with a plain placeholder tile, marked as such, so that the
    template browser shows empty cards instead of failing requests; unknown names are 404.
    """
    relative = request.match_info["path"]
    root = templates_dir()
    path = confined_file(root, relative) if root else None
    if path is None and "/" not in relative and "\\" not in relative:
        path = _template_media(relative)
        if path is None and relative in _template_assets() \
                and relative.lower().endswith(_THUMBNAIL_SUFFIXES):
            return web.Response(body=_placeholder_thumbnail(), content_type="image/webp",
                                headers={"Cache-Control": "no-cache",
                                         "X-OpenComfy-Placeholder": "template media not installed"})
    if path is None:
        raise web.HTTPNotFound()
    return web.FileResponse(path)


async def get_doc_file(request: web.Request) -> web.StreamResponse:
    """A node's documentation page or one of its images."""
    root = docs_dir()
    path = confined_file(root, request.match_info["path"]) if root else None
    if path is None:
        raise web.HTTPNotFound()
    if path.suffix == ".md":
        return web.FileResponse(path, headers={"Content-Type": "text/markdown; charset=utf-8"})
    return web.FileResponse(path)


async def get_user_css(request: web.Request) -> web.StreamResponse:
    """The user's own stylesheet (`<user dir>/default/user.css`), or an empty one."""
    user_dir = services_of(request).config.user_dir
    for candidate in (user_dir / "default" / "user.css", user_dir / "user.css"):
        if candidate.is_file():
            return web.FileResponse(candidate, headers=_NO_CACHE)
    return web.Response(text="", content_type="text/css", headers=_NO_CACHE)


def setup(app: web.Application) -> None:
    config = app["config"]
    web_root = frontend_root(config)
    index = web_root / "index.html"
    if not index.is_file():
        log.warning("no frontend at %s: only the API is served", web_root)

    async def get_index(request: web.Request) -> web.StreamResponse:
        """The frontend's entry page; never cached, so an upgraded frontend loads at once."""
        if not index.is_file():
            raise web.HTTPNotFound(text="no frontend installed")
        return web.FileResponse(index, headers=_NO_CACHE)

    app.router.add_get("/", get_index)
    app.router.add_get("/user.css", get_user_css)
    app.router.add_get("/templates/{path:.+}", get_template_file)
    app.router.add_get("/docs/{path:.+}", get_doc_file)

    registry = app.get("registry")
    for pack, directory in sorted(getattr(registry, "web_directories", {}).items()):
        if Path(directory).is_dir():
            app.router.add_static(f"/extensions/{pack}", directory, follow_symlinks=False)
    if web_root.is_dir():
        # Last: `/` as a static prefix would shadow any route registered after it.
        app.router.add_static("/", web_root, follow_symlinks=False)
        app.on_response_prepare.append(_cache_hashed_assets)


async def _cache_hashed_assets(request: web.Request, response: web.StreamResponse) -> None:
    """The frontend's build names files under /assets/ by content hash: they never change,
    so browsers may keep them (index.html, never cached, names the current ones)."""
    if (request.path.startswith("/assets/") and response.status == 200
            and _HASHED_NAME.search(request.path) and "Cache-Control" not in response.headers):
        response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
