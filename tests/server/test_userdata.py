"""Userdata files and users over HTTP, single- and multi-user, with hostile paths."""

from __future__ import annotations

import json
import os

import pytest

from tests.files.factories import headers
from tests.files.routes_server import files_server, multi_user_server  # noqa: F401  (fixtures)


def put(srv, rel: str, data: bytes, query: str = "", user: str | None = None):
    hdrs = {"Content-Type": "application/octet-stream", **({"Comfy-User": user} if user else {})}
    return srv.request("POST", f"/api/userdata/{rel}{query}", data=data, headers=hdrs)


def test_write_read_list_move_delete(files_server):  # noqa: F811
    srv = files_server
    root = srv.base_dir / "user" / "default"
    r = put(srv, "workflows%2Fa%20b.json", b'{"x": 1}')
    assert r.status == 200 and r.json() == "workflows/a b.json"
    assert (root / "workflows" / "a b.json").read_bytes() == b'{"x": 1}'
    r = srv.get("/api/userdata/workflows%2Fa%20b.json")
    assert r.status == 200 and r.body == b'{"x": 1}'
    assert headers(r)["content-disposition"] == "attachment"
    assert headers(r)["x-content-type-options"] == "nosniff"
    # overwrite=false on an existing file: 409 (text/plain), content untouched.
    r = put(srv, "workflows%2Fa%20b.json", b"other", "?overwrite=false")
    assert r.status == 409 and headers(r)["content-type"].startswith("text/plain")
    assert (root / "workflows" / "a b.json").read_bytes() == b'{"x": 1}'
    info = put(srv, "workflows%2Fsub%2Fc.json", b"12345", "?full_info=true").json()
    assert info["path"] == "sub/c.json" or info["path"] == "workflows/sub/c.json"
    assert info["size"] == 5 and abs(info["modified"] - os.path.getmtime(root / "workflows/sub/c.json") * 1000) < 2

    assert srv.get("/api/userdata?dir=workflows").json() == ["a b.json"]
    assert srv.get("/userdata?dir=workflows&recurse=true").json() == ["a b.json", "sub/c.json"]
    assert srv.get("/api/userdata?dir=workflows&recurse=true&split=true").json() == [
        ["a b.json", "a b.json"], ["sub/c.json", "sub", "c.json"]]
    full = srv.get("/api/userdata?dir=workflows&recurse=true&full_info=true").json()
    assert [(f["path"], f["size"]) for f in full] == [("a b.json", 8), ("sub/c.json", 5)]
    assert srv.get("/api/userdata?dir=nothing-here").json() == []
    r = srv.get("/api/userdata")
    assert r.status == 400 and headers(r)["content-type"].startswith("text/plain")

    r = srv.post("/api/userdata/workflows%2Fa%20b.json/move/workflows%2Frenamed.json?overwrite=false")
    assert r.status == 200 and r.json() == "workflows/renamed.json"
    assert not (root / "workflows" / "a b.json").exists()
    r = srv.post("/api/userdata/workflows%2Frenamed.json/move/workflows%2Fsub%2Fc.json?overwrite=false")
    assert r.status == 409
    r = srv.post("/api/userdata/workflows%2Frenamed.json/move/workflows%2Fsub%2Fc.json?full_info=true")
    assert r.status == 200 and r.json()["size"] == 8
    assert srv.post("/api/userdata/workflows%2Fgone.json/move/x.json").status == 404

    assert srv.request("DELETE", "/api/userdata/workflows%2Fsub%2Fc.json").status == 204
    assert srv.request("DELETE", "/api/userdata/workflows%2Fsub%2Fc.json").status == 404
    assert srv.get("/api/userdata/workflows%2Fsub%2Fc.json").status == 404


def test_user_css_is_inline_and_html_is_not(files_server):  # noqa: F811
    srv = files_server
    put(srv, "user.css", b"body{}")
    r = srv.get("/api/userdata/user.css")
    assert headers(r)["content-type"].startswith("text/css") and headers(r)["content-disposition"] == "inline"
    put(srv, "evil.html", b"<script>alert(1)</script>")
    r = srv.get("/api/userdata/evil.html")
    assert headers(r)["content-type"] == "application/octet-stream"
    assert headers(r)["content-disposition"] == "attachment"


def test_v2_listing(files_server):  # noqa: F811
    srv = files_server
    put(srv, "v2%2FB.json", b"12")
    put(srv, "v2%2Fa.json", b"1")
    put(srv, "v2%2Fdir%2Fx.json", b"1")
    entries = srv.get("/api/v2/userdata?path=v2").json()
    assert [(e["name"], e["type"], e["path"]) for e in entries] == [
        ("dir", "directory", "v2/dir"), ("a.json", "file", "v2/a.json"), ("B.json", "file", "v2/B.json")]
    assert entries[2]["size"] == 2
    assert any(e["name"] == "v2" for e in srv.get("/v2/userdata").json())
    assert srv.get("/api/v2/userdata?path=missing").status == 404
    assert srv.get("/api/v2/userdata?path=..").status == 400
    assert srv.get("/api/v2/userdata?path=v2%2Fa.json").status == 400


HOSTILE = ["..%2F..%2Fsecret.txt", "%2Fetc%2Fpasswd", "a%00b.json", "..%5C..%5Csecret.txt",
           "workflows%2F..%2F..%2F..%2Fsecret.txt", "escape%2Fsecret.txt"]


@pytest.fixture
def with_escape_link(files_server):  # noqa: F811
    root = files_server.base_dir / "user" / "default"
    root.mkdir(parents=True, exist_ok=True)
    (files_server.base_dir / "user" / "secret.txt").write_text("top secret")
    if not (root / "escape").is_symlink():
        os.symlink(files_server.base_dir / "user", root / "escape")
    return files_server


@pytest.mark.parametrize("rel", HOSTILE)
def test_hostile_userdata_paths(with_escape_link, rel):
    srv = with_escape_link
    r = srv.get(f"/api/userdata/{rel}")
    assert r.status == 400 and b"top secret" not in r.body
    assert put(srv, rel, b"pwned").status == 403
    assert srv.request("DELETE", f"/api/userdata/{rel}").status == 404
    assert srv.post(f"/api/userdata/{rel}/move/x.json").status in (400, 404)
    put(srv, "safe.json", b"1")
    assert srv.post(f"/api/userdata/safe.json/move/{rel}").status == 400
    assert srv.get(f"/api/userdata?dir={rel}").status == 400
    assert srv.get(f"/api/v2/userdata?path={rel}").status == 400
    assert (srv.base_dir / "user" / "secret.txt").read_text() == "top secret"
    assert not list(srv.base_dir.rglob("*pwned*"))


def test_users_single_user(files_server):  # noqa: F811
    r = files_server.get("/api/users").json()
    assert r["storage"] == "server" and isinstance(r["migrated"], bool)
    assert files_server.post("/api/users", {"username": "x"}).status == 400


def test_multi_user(multi_user_server):  # noqa: F811
    srv = multi_user_server
    assert "Ann" not in srv.get("/api/users").json()["users"].values()
    uid = srv.post("/api/users", {"username": "Ann"}).json()
    assert isinstance(uid, str) and uid.startswith("Ann_")
    assert srv.get("/users").json()["users"][uid] == "Ann"
    dup = srv.post("/api/users", {"username": "Ann"})
    assert dup.status == 400 and "error" in dup.json()
    assert srv.post("/api/users", {"username": "__system"}).status == 400
    assert srv.post("/api/users", {"name": "missing"}).status == 400
    assert srv.post("/api/users", data=b"{bad", headers={"Content-Type": "application/json"}).status == 400
    assert json.loads((srv.base_dir / "user" / "users.json").read_text())[uid] == "Ann"

    assert put(srv, "mine.json", b"ann's", user=uid).status == 200
    assert (srv.base_dir / "user" / uid / "mine.json").read_bytes() == b"ann's"
    # Another user (the default one, no header) does not see it.
    assert srv.get("/api/userdata/mine.json").status == 404
    assert srv.get("/api/userdata/mine.json", headers={"Comfy-User": uid}).body == b"ann's"
    for bad in ["nobody", "__system", "..", "../default"]:
        r = srv.get("/api/userdata?dir=x", headers={"Comfy-User": bad})
        assert r.status == 401
        assert srv.get("/api/settings", headers={"Comfy-User": bad}).status == 401
