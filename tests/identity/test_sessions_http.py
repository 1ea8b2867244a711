"""Cookie sessions: /login, POST/DELETE /api/auth/session, Origin checks on cookie writes."""

from __future__ import annotations

import http.cookiejar
import time
import urllib.parse
import urllib.request

from tests.identity.tenants import assert_conforms, create_user, new_tenant


def _cookie(response) -> str:
    header = response.headers.get("Set-Cookie", "")
    assert header.startswith("session="), header
    return header.split(";", 1)[0].split("=", 1)[1]


def test_session_from_api_key_and_bearer(auth_server):
    a = new_tenant(auth_server)
    for kind in ("key", "token"):
        r = a.post("/api/auth/session", kind=kind)
        assert r.status == 200
        assert_conforms("POST", "/api/auth/session", r)
        assert r.json() == {"success": True, "expiresIn": 7200}
        header = r.headers["Set-Cookie"]
        assert "HttpOnly" in header and "SameSite=Lax" in header and "Max-Age=7200" in header
        assert "Secure" not in header  # plain HTTP here
        cookie = _cookie(r)
        got = auth_server.get("/api/user", headers={"Cookie": f"session={cookie}"})
        assert got.status == 200 and got.json()["id"] == a.user_id


def test_secure_flag_behind_a_tls_proxy(auth_server):
    a = new_tenant(auth_server)
    r = a.post("/api/auth/session", headers={"X-Forwarded-Proto": "https"})
    assert "Secure" in r.headers["Set-Cookie"]


def test_session_creation_refuses_the_cookie_itself(auth_server):
    a = new_tenant(auth_server)
    cookie = _cookie(a.post("/api/auth/session"))
    r = auth_server.post("/api/auth/session", headers={"Cookie": f"session={cookie}",
                                                       "Origin": auth_server.url})
    assert r.status == 401


def test_logout_revokes_the_session_on_the_server(auth_server):
    a = new_tenant(auth_server)
    cookie = _cookie(a.post("/api/auth/session"))
    headers = {"Cookie": f"session={cookie}"}
    assert auth_server.get("/api/queue", headers=headers).status == 200
    r = auth_server.request("DELETE", "/api/auth/session", headers=headers)
    assert r.status == 200 and r.json() == {"success": True}
    assert_conforms("DELETE", "/api/auth/session", r)
    assert "Max-Age=-1" in r.headers["Set-Cookie"] or "Max-Age=0" in r.headers["Set-Cookie"]
    # The old cookie, replayed, no longer works.
    assert auth_server.get("/api/queue", headers=headers).status == 401
    # Logging out signed out is fine too.
    assert auth_server.request("DELETE", "/api/auth/session").status == 200


def test_cookie_writes_must_come_from_our_origin(auth_server):
    a = new_tenant(auth_server)
    cookie = _cookie(a.post("/api/auth/session"))
    body = {"clear": True}
    base = {"Cookie": f"session={cookie}"}
    assert auth_server.post("/api/queue", body, headers={**base, "Origin": "https://evil.example"}
                            ).status == 403
    assert auth_server.post("/api/queue", body, headers=base).status == 403  # no Origin at all
    assert auth_server.post("/api/queue", body, headers={**base, "Referer": "https://evil.example/x"}
                            ).status == 403
    assert auth_server.post("/api/queue", body, headers={**base, "Origin": auth_server.url}
                            ).status == 200
    # Reads with the cookie need no Origin; API-key writes need none either.
    assert auth_server.get("/api/queue", headers=base).status == 200
    assert a.post("/api/queue", body, headers={"Origin": "https://evil.example"}).status == 200


def test_expired_or_unknown_cookie_is_401(auth_server):
    assert auth_server.get("/api/queue", headers={"Cookie": "session=nope"}).status == 401


def test_login_form_sets_a_cookie_that_the_frontend_uses(auth_server):
    t = create_user(auth_server, password="s3cret-pass")
    page = auth_server.get("/login")
    assert page.status == 200 and b'<form method="post" action="/login">' in page.body
    # Signed out, the frontend's index sends the browser to /login.
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    resp = opener.open(auth_server.url + "/", timeout=10)
    assert resp.geturl().endswith("/login")
    data = urllib.parse.urlencode({"email": t.email, "password": "wrong"}).encode()
    req = urllib.request.Request(auth_server.url + "/login", data=data,
                                 headers={"Origin": auth_server.url})
    try:
        opener.open(req, timeout=10)
        raise AssertionError("a wrong password must not sign in")
    except urllib.error.HTTPError as exc:
        assert exc.code == 401 and b"Wrong email or password" in exc.read()
    data = urllib.parse.urlencode({"email": t.email, "password": "s3cret-pass"}).encode()
    req = urllib.request.Request(auth_server.url + "/login", data=data,
                                 headers={"Origin": auth_server.url})
    resp = opener.open(req, timeout=10)  # 303 to /, followed with the cookie
    assert resp.status == 200 and resp.geturl().rstrip("/") == auth_server.url
    user = opener.open(auth_server.url + "/api/user", timeout=10)
    import json

    assert json.loads(user.read())["email"] == t.email


def test_signed_in_browser_gets_the_frontend(auth_server):
    a = new_tenant(auth_server)
    cookie = _cookie(a.post("/api/auth/session"))
    # A top-level navigation carries no Origin: the index must not bounce it back to /login.
    r = auth_server.get("/", headers={"Cookie": f"session={cookie}"})
    assert r.status == 200 and b"<html" in r.body.lower()


def test_login_from_another_origin_is_refused(auth_server):
    t = create_user(auth_server, password="pw-pw-pw")
    data = urllib.parse.urlencode({"email": t.email, "password": "pw-pw-pw"}).encode()
    r = auth_server.request("POST", "/login", data=data, headers={
        "Origin": "https://evil.example", "Content-Type": "application/x-www-form-urlencoded"})
    assert r.status == 403 and "Set-Cookie" not in r.headers


def test_json_login_errors(auth_server):
    t = create_user(auth_server, password="pw-pw-pw")
    assert auth_server.post("/login", {"email": t.email, "password": "nope"}).status == 401
    assert auth_server.post("/login", {"email": "nobody@example.com", "password": "x"}).status == 401
    assert auth_server.post("/login", {"email": t.email}).status == 400
    assert auth_server.post("/login", [1, 2]).status == 400
    r = auth_server.post("/login", {"email": t.email, "password": "pw-pw-pw"})
    assert r.status == 200 and r.json()["token"]


def test_public_routes_stay_public(auth_server):
    for path in ("/health", "/api/system_stats", "/api/extensions", "/.well-known/jwks.json",
                 "/login", "/api/experiment/models", "/templates/index.json"):
        r = auth_server.get(path)
        assert r.status != 401, path
    r = auth_server.get("/api/features")
    assert r.status == 200
    for path in ("/api/queue", "/api/history", "/prompt", "/api/object_info", "/api/jobs",
                 "/api/userdata?dir=workflows", "/api/settings", "/internal/logs", "/api/secrets",
                 "/api/assets", "/api/tasks", "/api/view?filename=x.png"):
        r = auth_server.get(path)
        assert r.status == 401, path
        assert r.json()["code"] == "unauthorized"


def test_local_mode_needs_no_credentials(make_server):
    srv = make_server()
    assert srv.get("/api/queue").status == 200
    body = srv.get("/api/user").json()
    assert body["id"] == "local" and body["workspace_id"] == "local"
    assert srv.get("/api/workspaces").json()["workspaces"][0]["id"] == "local"


def test_password_guessing_is_rate_limited(tmp_path):
    from tests.identity.fixtures import start_auth_server

    srv = start_auth_server(tmp_path, "sqlite")
    try:
        t = create_user(srv, password="right-password")
        started = time.monotonic()
        statuses = [srv.post("/login", {"email": t.email, "password": f"guess{i}"}).status
                    for i in range(20)]
        assert statuses == [401] * 20  # the burst
        # Then 429, after at most the tries the bucket refilled meanwhile (one per 6 s): a slow
        # machine that hashes 20 passwords in 15 s legitimately earns two more guesses.
        extra = []
        while len(extra) < 30 and (not extra or extra[-1] != 429):
            extra.append(srv.post("/login", {"email": t.email, "password": "guess-more"}).status)
        assert extra[-1] == 429
        assert len(extra) - 1 <= (time.monotonic() - started) / 6 + 1
        r = srv.post("/login", {"email": t.email, "password": "right-password"})
        assert r.status == 429 and int(r.headers["Retry-After"]) >= 1
    finally:
        srv.stop()
