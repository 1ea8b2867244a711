"""File routes: /view, /upload/*, model listings, /files/mask-layers, /vhs/queryvideo.

Each area lives in its own `files_*` module; this one registers them all.
"""

from __future__ import annotations

from aiohttp import web

from opencomfy.http import files_media, files_models, files_upload, files_view


def setup(app: web.Application) -> None:
    for module in (files_view, files_upload, files_models, files_media):
        module.setup(app)
