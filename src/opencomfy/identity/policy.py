"""Which credentials each route accepts, from the spec's per-operation `security`.

Routes are looked up by their aiohttp path template with parameters blanked (`{}`) and in
their `/api` form (ComfyUI's bare aliases share the `/api` route's policy).

- `security: []` in the spec: public.
- BearerAuth only (workspaces, invites, API-key management, /api/auth/token, billing): our
  JWTs or the external issuer's; an API key cannot mint or manage credentials.
- everything else (the spec's default, ApiKeyAuth or BearerAuth): also the session cookie.
  The spec lists CookieAuth only on /api/view, /api/vhs/queryvideo and /api/features; we
  accept it on every default route so that the stock frontend works after /login (cookie
  writes must come from our own Origin).
- routes the spec does not list (custom nodes' routes, /internal/*): the default.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

API_KEY, BEARER, COOKIE, QUERY_TOKEN = "api_key", "bearer", "cookie", "query_token"


@dataclass(frozen=True)
class Policy:
    public: bool = False  # no credential looked at
    optional: bool = False  # anonymous allowed, a valid credential still recognised
    schemes: frozenset = frozenset({API_KEY, BEARER, COOKIE})


PUBLIC = Policy(public=True)
DEFAULT = Policy()
BEARER_ONLY = Policy(schemes=frozenset({BEARER}))
KEY_OR_BEARER = Policy(schemes=frozenset({API_KEY, BEARER}))
OPTIONAL = Policy(optional=True)
WEBSOCKET = Policy(schemes=frozenset({API_KEY, BEARER, COOKIE, QUERY_TOKEN}))

# The spec's `security: []` operations (method, path), and ours that must be reachable
# signed out (the login page, the JWKS).
_PUBLIC_OPERATIONS = {
    ("GET", "/health"), ("GET", "/.well-known/jwks.json"),
    ("GET", "/.well-known/oauth-authorization-server"),
    ("GET", "/.well-known/oauth-protected-resource"),
    ("DELETE", "/api/auth/session"),
    ("GET", "/api/experiment/models"), ("GET", "/api/experiment/models/{}"),
    ("GET", "/api/extensions"), ("GET", "/api/global_subgraphs"),
    ("GET", "/api/global_subgraphs/{}"), ("GET", "/api/hub/profiles/{}"),
    ("GET", "/api/hub/workflows"), ("GET", "/api/hub/workflows/{}"),
    ("GET", "/api/hub/workflows/index"), ("GET", "/api/node_replacements"),
    ("GET", "/api/system_stats"), ("GET", "/api/workflow_templates"),
    ("GET", "/oauth/authorize"), ("POST", "/oauth/authorize"), ("POST", "/oauth/register"),
    ("POST", "/oauth/token"),
    ("GET", "/login"), ("POST", "/login"),
}
_BEARER_ONLY_PREFIXES = ("/api/workspace/", "/api/workspaces", "/api/invites/",
                         "/api/auth/token", "/api/billing/")
# Modules whose handlers serve the frontend's static files: public.
PUBLIC_MODULES = frozenset({"opencomfy.http.frontend", "opencomfy.http.login"})

_PARAM = re.compile(r"\{[^}]*\}")


def normalise(template: str) -> str:
    return _PARAM.sub("{}", template)


def policy_for(method: str, template: str, *, has_api_alias: bool) -> Policy:
    """The policy of one route (`template` as registered; `has_api_alias` when `/api` +
    template is registered too, i.e. a ComfyUI bare alias)."""
    bare = path = normalise(template)
    if has_api_alias and not path.startswith("/api/"):
        path = "/api" + path
    method = "GET" if method == "HEAD" else method
    if ((method, path) in _PUBLIC_OPERATIONS or (method, bare) in _PUBLIC_OPERATIONS
            or path.startswith("/.well-known/")):
        return PUBLIC
    if path == "/api/features":
        return OPTIONAL
    if path in ("/ws", "/api/ws"):
        return WEBSOCKET
    if method == "POST" and path == "/api/auth/session":
        return KEY_OR_BEARER
    if path == "/api/workspace" or path.startswith(_BEARER_ONLY_PREFIXES):
        return BEARER_ONLY
    return DEFAULT
