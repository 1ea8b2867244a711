"""`/login`: a small email + password form (argon2) that sets the session cookie, after which
the stock frontend works signed in. `POST /login` with JSON answers an identity token too
(for scripts: exchange it at /api/auth/token)."""

from __future__ import annotations

import html
from pathlib import Path
from urllib.parse import unquote, urlsplit

from aiohttp import web

from opencomfy.http.auth import client_address, origin_allowed
from opencomfy.http.errors import ApiError, domain_error_response, read_json
from opencomfy.http.identity import set_session_cookie
from opencomfy.http.routing import services_of
from opencomfy.identity.common import iso
from opencomfy.identity.errors import RateLimited, Unauthenticated

_PAGE = (Path(__file__).resolve().parents[1] / "identity" / "templates" / "login.html").read_text()


def _page(*, error: str = "", email: str = "", status: int = 200) -> web.Response:
    body = _PAGE.replace("{error}", html.escape(error)).replace("{email}", html.escape(email))
    return web.Response(text=body, content_type="text/html", status=status,
                        headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY"})


async def get_login(request: web.Request) -> web.Response:
    return _page()


async def post_login(request: web.Request) -> web.StreamResponse:
    identity = services_of(request).identity
    if services_of(request).config.auth != "required":
        raise web.HTTPFound("/")
    is_json = request.content_type == "application/json"
    origin = request.headers.get("Origin")
    # A sign-in posted from another site (or an opaque `null` origin) would sign the browser
    # into that site's account: refused, the form and JSON alike (both set the cookie).
    if origin is not None and not origin_allowed(request, origin):
        if is_json:
            raise ApiError(403, "cross_origin_refused", "sign-in from another origin refused")
        return _page(error="Sign-in from another site refused.", status=403)
    if is_json:
        body = await read_json(request)
        if not isinstance(body, dict):
            raise ApiError(400, "invalid_request", "request body must be a JSON object")
    else:
        body = dict(await request.post())
    email, password = body.get("email"), body.get("password")
    if not isinstance(email, str) or not isinstance(password, str) or not email or not password:
        if is_json:
            raise ApiError(400, "invalid_request", "email and password are required")
        return _page(error="Email and password are required.", status=400)
    # Password guessing is slowed per email and per client address (429 with Retry-After).
    # A wrong password is the middleware's 401 for JSON; the account without a personal
    # workspace its 403 for both.
    try:
        signed = await identity.sign_in(email=email, password=password,
                                        address=client_address(request), with_identity_token=is_json)
    except RateLimited as exc:
        response = (domain_error_response(exc) if is_json else
                    _page(error="Too many attempts; try again shortly.", email=email, status=429))
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    except Unauthenticated:
        if is_json:
            raise
        return _page(error="Wrong email or password.", email=email, status=401)
    if is_json:
        assert signed.identity_token is not None and signed.identity_expires_s is not None
        response = web.json_response({"token": signed.identity_token,
                                      "expires_at": iso(signed.identity_expires_s * 1000),
                                      "user_id": signed.user_id, "workspace_id": signed.workspace_id})
    else:
        response = web.Response(status=303, headers={"Location": _safe_next(request.query.get("next"))})
    set_session_cookie(request, response, signed.session_token, signed.session_ttl_s)
    return response


_MAX_DECODES = 4


def _safe_next(target: str | None) -> str:
    """`next` when it is a path on this server, else `/` (no open redirect).

    Browsers read `/\\host`, `//host`, `/<tab>/host` and their percent-encoded forms as another
    site, so the target is judged after decoding (repeatedly: double encoding too) and
    refused with any backslash, control character, scheme, authority or leading `//`."""
    if not target:
        return "/"
    decoded = target
    for _ in range(_MAX_DECODES):
        if not _is_local_path(decoded):
            return "/"
        once = unquote(decoded)
        if once == decoded:
            return target
        decoded = once
    return "/"  # still changing after several decodings: not a plain path


def _is_local_path(path: str) -> bool:
    if not path.startswith("/") or path.startswith("//") or "\\" in path:
        return False
    if not path.isascii() or any(ord(c) < 0x20 or ord(c) == 0x7F for c in path):
        return False
    parts = urlsplit(path)
    return not parts.scheme and not parts.netloc


def setup(app: web.Application) -> None:
    app.router.add_get("/login", get_login)
    app.router.add_post("/login", post_login)
