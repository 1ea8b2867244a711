"""/settings and /settings/{id} over HTTP."""

from __future__ import annotations

import json

from tests.files.routes_server import files_server, multi_user_server  # noqa: F401  (fixtures)


def test_settings_roundtrip(files_server):  # noqa: F811
    srv = files_server
    assert srv.get("/api/settings").json() == {}
    assert srv.get("/api/settings/Comfy.Missing").json() is None
    r = srv.post("/api/settings", {"Comfy.A": 1, "Comfy.B": {"x": [1, 2]}})
    assert r.status == 200 and r.json() == {"Comfy.A": 1, "Comfy.B": {"x": [1, 2]}}
    assert srv.post("/settings", {"Comfy.A": 2}).json() == {"Comfy.A": 2, "Comfy.B": {"x": [1, 2]}}
    assert srv.post("/api/settings/Comfy.C", "dark").status == 200
    assert srv.get("/api/settings/Comfy.C").json() == "dark"
    assert srv.get("/settings/Comfy.B").json() == {"x": [1, 2]}
    stored = json.loads((srv.base_dir / "user" / "default" / "comfy.settings.json").read_text())
    assert stored == {"Comfy.A": 2, "Comfy.B": {"x": [1, 2]}, "Comfy.C": "dark"}
    # A text/plain body holding JSON, as the spec allows.
    r = srv.post("/api/settings", data=b'{"Comfy.D": true}', headers={"Content-Type": "text/plain"})
    assert r.status == 200 and srv.get("/api/settings/Comfy.D").json() is True
    # The setting id may be URL-encoded.
    assert srv.post("/api/settings/Comfy.With%2FSlash", 5).status == 200
    assert srv.get("/api/settings").json()["Comfy.With/Slash"] == 5


def test_settings_bad_bodies(files_server):  # noqa: F811
    srv = files_server
    for data in (b"{broken", b"", b"[1, 2]", b'"just a string"'):
        r = srv.post("/api/settings", data=data, headers={"Content-Type": "application/json"})
        assert r.status == 400 and set(r.json()) >= {"code", "message"}
    r = srv.post("/api/settings/x", data=b"{broken", headers={"Content-Type": "application/json"})
    assert r.status == 400 and set(r.json()) >= {"code", "message"}


def test_settings_are_per_user(multi_user_server):  # noqa: F811
    srv = multi_user_server
    uid = srv.post("/api/users", {"username": "Bo"}).json()
    srv.post("/api/settings", {"k": "bo"}, headers={"Comfy-User": uid})
    srv.post("/api/settings", {"k": "default"})
    assert srv.get("/api/settings", headers={"Comfy-User": uid}).json() == {"k": "bo"}
    assert srv.get("/api/settings").json() == {"k": "default"}


def test_concurrent_setting_writes_all_land(files_server):  # noqa: F811
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda i: files_server.post(f"/api/settings/Race.{i}", i).status, range(16)))
    assert statuses == [200] * 16
    settings = files_server.get("/api/settings").json()
    assert {k: v for k, v in settings.items() if k.startswith("Race.")} == {f"Race.{i}": i for i in range(16)}
