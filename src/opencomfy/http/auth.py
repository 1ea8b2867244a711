"""The auth middleware: with `--auth required`, every request is resolved to a `Caller`
(or refused) before its handler runs; with `--auth none`, every request is the local user.

Credentials, in this order: `X-API-Key`; `Authorization: Bearer` (our JWTs, the external
issuer's ID tokens; a `comfyui-` bearer is read as an API key); `?token=` on /ws; the
`session` cookie. Which of them a route accepts comes from `identity.policy`. The workspace
is the credential's, or `X-Comfy-Workspace-ID` checked against membership. Writes
authenticated by the cookie must come from our own Origin (CSRF). Each credential has a
request rate limit, and each client address a limit on failed credential attempts (429
with Retry-After).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from aiohttp import web

from opencomfy.http.caller import set_caller
from opencomfy.http.errors import domain_error_response, error_response
from opencomfy.http.routing import services_of
from opencomfy.identity import policy as P
from opencomfy.identity.errors import IdentityError, RateLimited, Unauthenticated
from opencomfy.identity.principal import LOCAL_CALLER, Caller

if TYPE_CHECKING:
    from opencomfy.identity.service import IdentityService

log = logging.getLogger(__name__)

SESSION_COOKIE = "session"
WORKSPACE_HEADER = "X-Comfy-Workspace-ID"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _identity(request: web.Request) -> "IdentityService":
    """The identity service (the middleware's, with `--auth required`)."""
    return services_of(request).identity


def _route_policy(request: web.Request, cache: dict) -> P.Policy | None:
    """The matched route's policy (None: nothing matched, the router answers 404/405)."""
    route = request.match_info.route
    resource = route.resource
    if resource is None:
        return None
    key = (request.method, id(resource))
    found = cache.get(key)
    if found is None:
        handler_module = getattr(route.handler, "__module__", "") or ""
        if isinstance(resource, web.StaticResource) or handler_module in P.PUBLIC_MODULES:
            found = P.PUBLIC
        else:
            template = resource.canonical
            alias = not template.startswith("/api/") and _has_api_alias(request.app, template)
            found = P.policy_for(request.method, template, has_api_alias=alias)
        cache[key] = found
    return found


def _has_api_alias(app: web.Application, template: str) -> bool:
    target = "/api" + template
    return any(r.canonical == target for r in app.router.resources())


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


async def resolve_caller(request: web.Request, policy: P.Policy) -> Caller | None:
    """The caller from the credentials this route accepts; None when none was presented.
    Raises Unauthenticated for a presented credential that is not valid."""
    identity = _identity(request)
    key = request.headers.get("X-API-Key")
    bearer = _bearer(request)
    if bearer and bearer.startswith("comfyui-") and not key:
        key, bearer = bearer, None
    if key:
        if P.API_KEY not in policy.schemes:
            raise Unauthenticated("this route does not accept API keys")
        return await _verified(request, identity.from_api_key, key)
    if bearer:
        if P.BEARER not in policy.schemes:
            raise Unauthenticated("this route does not accept bearer tokens")
        return await _verified(request, identity.from_bearer, bearer)
    query_token = request.query.get("token") if P.QUERY_TOKEN in policy.schemes else None
    if query_token:
        if query_token.startswith("comfyui-"):
            return await _verified(request, identity.from_api_key, query_token)
        return await _verified(request, identity.from_bearer, query_token)
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        if P.COOKIE not in policy.schemes:
            raise Unauthenticated("this route does not accept the session cookie")
        caller = await identity.from_session(cookie)
        if request.method not in _SAFE_METHODS or policy is P.WEBSOCKET:
            _check_origin(request)
        return caller
    return None


def client_address(request: web.Request) -> str:
    """The address failed attempts are counted against: the peer (a proxy in front of us
    counts as one client; forwarded headers are not trusted)."""
    return request.remote or ""


async def _verified(request: web.Request, verify, credential: str) -> Caller:
    """`verify(credential)`, counting a failure against the client's address; an address
    over its limit is refused before anything is checked, so it learns nothing more.
    (The session cookie is not counted: a browser's stale cookie is no guess.)"""
    limiter = _identity(request).failure_limiter
    address = client_address(request)
    wait = limiter.wait(address)
    if wait:
        raise RateLimited("too many failed credential attempts from this address", retry_after=wait)
    try:
        return await verify(credential)
    except Unauthenticated:
        limiter.record(address)
        raise


class CrossOriginRefused(IdentityError):
    status, code = 403, "cross_origin_refused"


def _own_origin(request: web.Request) -> str:
    scheme = request.headers.get("X-Forwarded-Proto", request.scheme).split(",")[0].strip()
    return f"{scheme}://{request.host}"


def origin_allowed(request: web.Request, origin: str) -> bool:
    """Whether `origin` is our own (or the one `--enable-cors-header` names). The opaque
    `null` (sandboxed frames, file:// pages, cross-site redirects) is never ours."""
    origin = origin.strip().rstrip("/")
    if origin.lower() == "null":
        return False
    allowed = {_own_origin(request).lower()}
    cors = request.app["config"].enable_cors_header
    if cors and cors != "*":
        allowed.add(cors.rstrip("/").lower())
    return origin.lower() in allowed


def _check_origin(request: web.Request) -> None:
    """A write carried by the cookie must come from a page of ours (the browser sends Origin)."""
    origin = request.headers.get("Origin")
    if origin is None:
        referer = request.headers.get("Referer", "")
        origin = "/".join(referer.split("/")[:3]) if referer else None
    if origin is None or not origin_allowed(request, origin):
        raise CrossOriginRefused("cross-origin request with the session cookie refused")


def is_secure(request: web.Request) -> bool:
    """Served over TLS (directly or behind a proxy that says so): cookies get `Secure`."""
    return request.secure or request.headers.get("X-Forwarded-Proto", "").startswith("https")


def auth_middleware_for(config) -> Any:
    """The middleware for this configuration (local mode: a no-op that sets the local caller)."""
    if config.auth != "required":
        @web.middleware
        async def local_caller(request: web.Request, handler):
            set_caller(request, LOCAL_CALLER)
            return await handler(request)

        return local_caller

    cache: dict = {}

    @web.middleware
    async def authenticate(request: web.Request, handler):
        policy = _route_policy(request, cache)
        if policy is None or policy.public:
            if request.path == "/" and request.method == "GET" and not await _signed_in(request):
                # The frontend signed out would only meet 401s: send the browser to sign in.
                raise web.HTTPFound("/login")
            return await handler(request)
        try:
            caller = await resolve_caller(request, policy)
            if caller is not None:
                wanted = request.headers.get(WORKSPACE_HEADER)
                if wanted:
                    caller = await _identity(request).in_workspace(caller, wanted)
        except IdentityError as exc:
            if policy.optional and isinstance(exc, Unauthenticated):
                return await handler(request)
            return _refusal(exc)
        if caller is None:
            if policy.optional:
                return await handler(request)
            return _refusal(Unauthenticated("authentication required"))
        wait = _identity(request).rate_limiter.check(caller.credential_id)
        if wait:
            response = error_response(429, "rate_limited", "too many requests")
            response.headers["Retry-After"] = str(wait)
            return response
        set_caller(request, caller)
        return await handler(request)

    return authenticate


async def _signed_in(request: web.Request) -> bool:
    """Whether the request carries any credential that resolves (the index page's check)."""
    try:
        return await resolve_caller(request, P.DEFAULT) is not None
    except IdentityError:
        return False


def _refusal(exc: IdentityError) -> web.Response:
    response = domain_error_response(exc)
    if exc.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="opencomfy"'
    if isinstance(exc, RateLimited):
        response.headers["Retry-After"] = str(exc.retry_after)
    return response
