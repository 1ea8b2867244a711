"""Shared by the identity route modules: domain errors to the spec's ErrorResponse, and the
owner check."""

from __future__ import annotations

import functools

from aiohttp import web

from opencomfy.http.caller import caller_of
from opencomfy.http.errors import error_response
from opencomfy.identity.errors import Forbidden, IdentityError
from opencomfy.identity.principal import Caller


def maps_identity_errors(handler):
    """Answer a domain error with `{"code", "message"}` and its status."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except IdentityError as exc:
            return error_response(exc.status, exc.code, exc.message)

    return wrapped


def owner_of(request: web.Request) -> Caller:
    """The caller, who must own the current workspace (403 otherwise)."""
    caller = caller_of(request)
    if not caller.is_owner:
        raise Forbidden("only workspace owners can do this")
    return caller
