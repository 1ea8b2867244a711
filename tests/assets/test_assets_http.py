"""Asset records over HTTP against a running server, on every backend and store."""

from __future__ import annotations

import urllib.error
import urllib.request
import uuid

import blake3

from tests.assets.factories import pickle_bytes, safetensors_bytes, send_json, unique_bytes, upload


def _tag() -> str:
    return "t" + uuid.uuid4().hex[:10]


def test_upload_get_and_dedup(asset_server):
    data = unique_bytes("dedup")
    first = upload(asset_server, data, name="a.png", tags="input")
    assert first.status == 201, first.body
    a = first.json()
    assert a["created_new"] is True
    assert a["asset_hash"] == "blake3:" + blake3.blake3(data).hexdigest()
    assert a["size"] == len(data) and a["mime_type"] == "image/png" and a["tags"] == ["input"]
    # Absolute (the spec's `format: uri`), built from the request's own Host.
    assert a["preview_url"] == f"{asset_server.url}/api/assets/{a['id']}/content"

    again = upload(asset_server, data, name="b.png", tags="input")
    assert again.status == 201 and again.json()["created_new"] is False
    b = again.json()
    assert b["id"] != a["id"] and b["asset_hash"] == a["asset_hash"]
    # the same content and name in one workspace is the same record
    same = upload(asset_server, data, name="a.png", tags="input")
    assert same.status == 201 and same.json()["id"] == a["id"]

    got = asset_server.get(f"/api/assets/{a['id']}")
    assert got.status == 200 and got.json()["name"] == "a.png"
    # content is stored once; deleting one record keeps it for the other
    assert asset_server.request("DELETE", f"/api/assets/{a['id']}").status == 204
    assert asset_server.get(f"/api/assets/{a['id']}").status == 404
    content = asset_server.get(f"/api/assets/{b['id']}/content")
    assert content.status == 200 and content.body == data
    assert asset_server.request("HEAD", f"/api/assets/hash/{b['asset_hash']}").status == 200
    assert asset_server.request("DELETE", f"/api/assets/{b['id']}").status == 204
    assert asset_server.request("HEAD", f"/api/assets/hash/{b['asset_hash']}").status == 404


def test_content_on_s3_is_a_redirect_to_a_signed_url(asset_server):
    data = unique_bytes("redirect")
    a = upload(asset_server, data, name="r.png").json()

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        resp = opener.open(asset_server.url + f"/api/assets/{a['id']}/content")
        status, location = resp.status, None
        assert resp.read() == data
    except urllib.error.HTTPError as e:
        status, location = e.code, e.headers["Location"]
    if asset_server.store == "s3":
        assert status == 302 and "X-Amz-Signature=" in location
        with urllib.request.urlopen(location) as r:
            assert r.read() == data
    else:
        assert status == 200


def test_upload_idempotent_id_and_metadata(asset_server):
    asset_id = str(uuid.uuid4())
    r = upload(asset_server, unique_bytes("idem"), name="x.txt", id=asset_id, user_metadata='{"k": "v"}')
    assert r.status == 201 and r.json()["id"] == asset_id and r.json()["user_metadata"] == {"k": "v"}
    r2 = upload(asset_server, unique_bytes("other"), name="y.txt", id=asset_id)
    assert r2.status == 201 and r2.json()["created_new"] is False and r2.json()["name"] == "x.txt"


def test_upload_bad_input(asset_server):
    from tests.harness import multipart

    body, ctype = multipart({"name": "x"}, {})
    r = asset_server.post("/api/assets", data=body, headers={"Content-Type": ctype})
    assert r.status == 400 and r.json()["code"]
    r = asset_server.post("/api/assets", data=b"raw", headers={"Content-Type": "text/plain"})
    assert r.status == 415
    assert upload(asset_server, b"x", name="x.bin", user_metadata="[1]").status == 400
    assert upload(asset_server, b"x", name="x.bin", preview_id="nope").status == 400
    assert upload(asset_server, b"x", name="x.bin", tags='["ok", 3]').status == 400
    # over the 2 MB limit: 413, and nothing stays behind
    before = asset_server.get("/api/assets?limit=1").json()["total"]
    big = upload(asset_server, b"\0" * (3 * 1024 * 1024), name="big.bin")
    assert big.status == 413 and big.json()["code"] == "payload_too_large"
    assert asset_server.get("/api/assets?limit=1").json()["total"] == before


def test_pickle_model_is_refused(asset_server):
    r = upload(asset_server, pickle_bytes(), name="m.ckpt", tags="models,checkpoints")
    assert r.status == 422
    assert r.json() == {"code": "FORMAT_NOT_ALLOWED", "field": "format",
                        "message": 'File format "PickleTensor" is not allowed. Allowed formats: [SafeTensor]'}
    r = upload(asset_server, pickle_bytes(), name="m.safetensors", tags="models")
    assert r.status == 422 and r.json()["code"] == "FORMAT_NOT_ALLOWED"
    ok = upload(asset_server, safetensors_bytes(), name=f"{_tag()}.safetensors", tags="models,checkpoints")
    assert ok.status in (200, 201) and ok.json()["tags"] == ["checkpoints", "models"]
    # outside models a pickle is just a file
    assert upload(asset_server, pickle_bytes() + unique_bytes(), name="data.pkl", tags="input").status == 201


def test_list_filters_sort_and_pagination(asset_server):
    tag = _tag()
    ids = []
    for i, name in enumerate(["Cat.png", "dog.png", "catalog.txt", "bird.png"]):
        r = upload(asset_server, unique_bytes(name) + b"x" * i, name=name, tags=f"input,{tag}",
                   user_metadata=f'{{"n": {i}, "kind": "{"even" if i % 2 == 0 else "odd"}"}}')
        ids.append(r.json()["id"])
    send_json(asset_server, "POST", f"/api/assets/{ids[1]}/tags", {"tags": ["pet"]})
    send_json(asset_server, "POST", f"/api/assets/{ids[0]}/tags", {"tags": ["pet"]})

    def names(query: str) -> list[str]:
        r = asset_server.get(f"/api/assets?include_tags={tag}&{query}")
        assert r.status == 200, r.body
        return [a["name"] for a in r.json()["assets"]]

    # Name order is the database's collation: case-blind or byte order ("C" puts capitals first).
    assert names("sort=name&order=asc") in (["bird.png", "Cat.png", "catalog.txt", "dog.png"],
                                            ["Cat.png", "bird.png", "catalog.txt", "dog.png"])
    assert sorted(names("name_contains=CAT")) == ["Cat.png", "catalog.txt"]
    assert names("name_contains=%25") == []  # a literal %, not a wildcard
    assert sorted(names(f"include_tags={tag},pet")) == ["Cat.png", "dog.png"]
    assert sorted(names("exclude_tags=pet")) == ["bird.png", "catalog.txt"]
    assert names("sort=size&order=asc")[0] == "Cat.png"
    assert sorted(names('metadata_filter={"kind":"odd"}')) == ["bird.png", "dog.png"]
    assert names('metadata_filter={"n":2}') == ["catalog.txt"]
    # created_at desc is the default order: newest first
    assert names("")[0] == "bird.png"

    page1 = asset_server.get(f"/api/assets?include_tags={tag}&limit=3&sort=created_at&order=asc").json()
    assert page1["total"] == 4 and page1["has_more"] is True and len(page1["assets"]) == 3
    page2 = asset_server.get(f"/api/assets?include_tags={tag}&limit=3&sort=created_at&order=asc"
                             f"&after={page1['next_cursor']}&offset=99").json()
    assert [a["id"] for a in page1["assets"] + page2["assets"]] == ids
    assert page2["has_more"] is False and "next_cursor" not in page2
    by_offset = asset_server.get(f"/api/assets?include_tags={tag}&limit=2&offset=2&sort=created_at&order=asc")
    assert [a["id"] for a in by_offset.json()["assets"]] == ids[2:]

    for bad in ("limit=0", "limit=501", "offset=-1", "sort=color", "order=up", "metadata_filter=[1]",
                "asset_hash=md5:1", f"after={page1['next_cursor']}&sort=name",
                "after=garbage&sort=created_at", "after=x&sort=last_access_time", "include_public=maybe"):
        r = asset_server.get(f"/api/assets?{bad}")
        assert r.status == 400, bad
        assert set(r.json()) >= {"code", "message"}


def test_update(asset_server):
    a = upload(asset_server, unique_bytes("upd"), name="old.png").json()
    r = send_json(asset_server, "PUT", f"/api/assets/{a['id']}", {"name": "new.png",
                                                                   "user_metadata": {"x": 1}})
    assert r.status == 200
    assert r.json()["name"] == "new.png" and r.json()["user_metadata"] == {"x": 1}
    assert r.json()["updated_at"] >= a["updated_at"]
    got = asset_server.get(f"/api/assets/{a['id']}").json()
    assert got["name"] == "new.png" and got["display_name"] == "new.png"
    assert send_json(asset_server, "PUT", f"/api/assets/{a['id']}", {}).status == 400
    assert send_json(asset_server, "PUT", f"/api/assets/{a['id']}", {"name": ""}).status == 400
    assert send_json(asset_server, "PUT", f"/api/assets/{a['id']}", {"user_metadata": 3}).status == 400
    assert send_json(asset_server, "PUT", f"/api/assets/{a['id']}",
                     {"preview_id": str(uuid.uuid4())}).status == 400
    assert send_json(asset_server, "PUT", f"/api/assets/{uuid.uuid4()}", {"name": "x"}).status == 404


def test_tags_routes(asset_server):
    a = upload(asset_server, unique_bytes("tags"), name="t.png", tags="input,red").json()
    path = f"/api/assets/{a['id']}/tags"
    r = send_json(asset_server, "POST", path, {"tags": ["Blue", "red"]})
    assert r.status == 200
    assert r.json() == {"added": ["blue"], "already_present": ["red"],
                        "total_tags": ["blue", "input", "red"]}
    r = send_json(asset_server, "DELETE", path, {"tags": ["red", "green"]})
    assert r.json() == {"removed": ["red"], "not_present": ["green"], "total_tags": ["blue", "input"]}
    r = send_json(asset_server, "PUT", path, {"add": ["x"], "remove": ["blue"]})
    assert r.json()["total_tags"] == ["input", "x"] and r.json()["added"] == ["x"]
    assert r.json()["removed"] == ["blue"]
    assert asset_server.get(f"/api/assets/{a['id']}").json()["tags"] == ["input", "x"]
    # system tags are reserved
    assert send_json(asset_server, "POST", path, {"tags": ["output"]}).status == 422
    assert send_json(asset_server, "DELETE", path, {"tags": ["input"]}).status == 422
    for bad in ({"tags": []}, {"tags": "x"}, {"tags": [""]}, {}, [1]):
        assert send_json(asset_server, "POST", path, bad).status == 400, bad
    assert send_json(asset_server, "PUT", path, {"add": [], "remove": []}).status == 400
    assert send_json(asset_server, "POST", f"/api/assets/{uuid.uuid4()}/tags", {"tags": ["a"]}).status == 404


def test_tag_counts_and_histogram(asset_server):
    tag, other = _tag(), _tag()
    for i in range(3):
        upload(asset_server, unique_bytes(tag), name=f"h{i}.png", tags=f"input,{tag}" + (f",{other}" if i else ""))
    tags = asset_server.get(f"/api/tags?prefix={tag[:6]}&limit=1000").json()
    counts = {t["name"]: t["count"] for t in tags["tags"]}
    assert counts[tag] == 3
    assert asset_server.get("/api/tags?order=name_asc&limit=1000").json()["tags"] == sorted(
        asset_server.get("/api/tags?order=name_asc&limit=1000").json()["tags"], key=lambda t: t["name"])
    hist = asset_server.get(f"/api/assets/tags/refine?include_tags={tag}").json()["tag_counts"]
    assert hist == {tag: 3, other: 2, "input": 3}
    hist = asset_server.get(f"/api/assets/tags/refine?include_tags={tag}&exclude_tags={other}").json()
    assert hist["tag_counts"] == {tag: 1, "input": 1}
    assert asset_server.get("/api/assets/tags/refine?limit=0").status == 400
    assert asset_server.get("/api/tags?order=random").status == 400
    zero = asset_server.get("/api/tags?include_zero=true&prefix=tem").json()
    assert {"name": "temp", "count": 0} in zero["tags"]


def test_from_hash(asset_server):
    data = unique_bytes("fromhash")
    a = upload(asset_server, data, name="src.png").json()
    r = send_json(asset_server, "POST", "/api/assets/from-hash",
                  {"hash": a["asset_hash"], "name": "copy.png", "tags": ["output"], "user_metadata": {"a": 1}})
    assert r.status == 201, r.body
    assert r.json()["name"] == "copy.png" and r.json()["asset_hash"] == a["asset_hash"]
    assert r.json()["created_new"] is True and r.json()["tags"] == ["output"]
    assert asset_server.get(f"/api/assets/{r.json()['id']}/content").body == data
    missing = "blake3:" + "0" * 64
    assert send_json(asset_server, "POST", "/api/assets/from-hash",
                     {"hash": missing, "tags": ["input"]}).status == 404
    assert send_json(asset_server, "POST", "/api/assets/from-hash",
                     {"hash": "sha256:" + "1" * 64, "tags": ["input"]}).status == 404
    for bad in ({"hash": "blake3:xyz", "tags": ["a"]}, {"hash": a["asset_hash"]},
                {"hash": a["asset_hash"], "tags": []}):
        assert send_json(asset_server, "POST", "/api/assets/from-hash", bad).status == 400, bad


def test_hash_head_and_unknown_ids(asset_server):
    assert asset_server.request("HEAD", "/api/assets/hash/blake3:" + "a" * 64).status == 404
    assert asset_server.request("HEAD", "/api/assets/hash/md5:abc").status == 400
    assert asset_server.get(f"/api/assets/{uuid.uuid4()}").status == 404
    assert asset_server.request("DELETE", f"/api/assets/{uuid.uuid4()}").status == 404
    assert asset_server.get(f"/api/assets/{uuid.uuid4()}/content").status == 404
    for path in ("/api/assets/not-a-uuid", "/api/assets/not-a-uuid/content"):
        r = asset_server.get(path)
        assert r.status == 404 and r.json()["code"] == "not_found"
    assert send_json(asset_server, "PUT", "/api/assets/xyz", {"name": "a"}).status == 404
    assert send_json(asset_server, "POST", "/api/assets/xyz/tags", {"tags": ["a"]}).status == 404


def test_delete_refused_while_used_as_preview(asset_server):
    preview = upload(asset_server, unique_bytes("pv"), name="p.png").json()
    main = upload(asset_server, unique_bytes("main"), name="m.bin", preview_id=preview["id"]).json()
    assert main["preview_id"] == preview["id"]
    r = asset_server.request("DELETE", f"/api/assets/{preview['id']}")
    assert r.status == 409 and r.json()["code"] == "asset_in_use"
    assert asset_server.request("DELETE", f"/api/assets/{main['id']}").status == 204
    assert asset_server.request("DELETE", f"/api/assets/{preview['id']}").status == 204
