"""Shared by the identity route modules: the owner check. (Their domain errors are answered
by the error middleware, http/errors.py.)"""

from __future__ import annotations

from aiohttp import web

from opencomfy.http.caller import caller_of
from opencomfy.identity.errors import Forbidden
from opencomfy.identity.principal import Caller


def owner_of(request: web.Request) -> Caller:
    """The caller, who must own the current workspace (403 otherwise)."""
    caller = caller_of(request)
    if not caller.is_owner:
        raise Forbidden("only workspace owners can do this")
    return caller
