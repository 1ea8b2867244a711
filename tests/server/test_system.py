"""System routes over HTTP on a real server: /object_info, /system_stats, /features, /health,
and the `/api` aliases."""

from __future__ import annotations

import time

import pytest

from tests.conformance.spec import load_spec, response_validator

CORE_IMAGE_NODES = ("EmptyImage", "ImageInvert", "SaveImage")


def _validate(method: str, spec_path: str, status: int, body) -> None:
    validator = response_validator(method, spec_path, status)
    assert validator is not None
    errors = sorted(validator.iter_errors(body), key=str)
    assert not errors, [e.message for e in errors[:5]]


# -- /object_info ----------------------------------------------------------------------------

def test_object_info_lists_core_image_nodes_in_the_spec_shape(server):
    r = server.get("/api/object_info")
    assert r.status == 200
    assert r.headers["Content-Type"].startswith("application/json")
    info = r.json()
    _validate("get", "/api/object_info", 200, info)
    for name in CORE_IMAGE_NODES:
        assert info[name]["name"] == name
        assert info[name]["python_module"] == "nodes"
    assert info["EmptyImage"]["output"] == ["IMAGE"]
    assert info["EmptyImage"]["input_order"]["required"][:2] == ["width", "height"]
    assert info["SaveImage"]["output_node"] is True


def test_object_info_is_the_same_cached_bytes_with_an_etag(server):
    first = server.get("/api/object_info")
    second = server.get("/object_info")
    assert first.body == second.body
    etag = first.headers["ETag"]
    assert etag == second.headers["ETag"] and len(etag) > 2

    not_modified = server.get("/api/object_info", headers={"If-None-Match": etag})
    assert not_modified.status == 304
    assert not_modified.body == b""
    assert not_modified.headers["ETag"] == etag
    changed = server.get("/api/object_info", headers={"If-None-Match": '"stale"'})
    assert changed.status == 200 and changed.body == first.body


def test_object_info_is_sent_gzipped_to_clients_that_accept_it(server):
    import gzip

    from opencomfy.catalogue import GZIP_MIN_BYTES

    plain = server.get("/api/object_info")
    if len(plain.body) < GZIP_MIN_BYTES:
        pytest.skip("catalogue too small to be compressed")
    packed = server.get("/api/object_info", headers={"Accept-Encoding": "br, gzip"})
    assert packed.headers["Content-Encoding"] == "gzip"
    assert packed.headers["Vary"] == plain.headers["Vary"] == "Accept-Encoding"
    assert len(packed.body) < len(plain.body) / 3
    assert gzip.decompress(packed.body) == plain.body
    # Each representation has its own ETag, and each revalidates.
    assert packed.headers["ETag"] != plain.headers["ETag"]
    again = server.get("/api/object_info", headers={"Accept-Encoding": "gzip",
                                                    "If-None-Match": packed.headers["ETag"]})
    assert again.status == 304
    refused = server.get("/api/object_info", headers={"Accept-Encoding": "gzip;q=0"})
    assert "Content-Encoding" not in refused.headers and refused.body == plain.body


def test_object_info_of_one_node(server):
    everything = server.get("/api/object_info").json()
    r = server.get("/api/object_info/ImageInvert")
    assert r.status == 200
    assert r.json() == {"ImageInvert": everything["ImageInvert"]}
    etag = r.headers["ETag"]
    assert server.get("/object_info/ImageInvert", headers={"If-None-Match": etag}).status == 304
    # An unknown class answers an empty object, as ComfyUI does.
    unknown = server.get("/api/object_info/NoSuchNode")
    assert unknown.status == 200 and unknown.json() == {}


def test_object_info_sees_a_new_input_file(server):
    """LoadImage lists the input folder: a file dropped there appears without a restart."""
    before = server.get("/api/object_info/LoadImage").json()
    if not before:
        pytest.skip("LoadImage is not registered")
    from PIL import Image

    name = f"catalogue-{time.monotonic_ns()}.png"
    input_dir = server.base_dir / "input"
    input_dir.mkdir(exist_ok=True)
    Image.new("RGB", (4, 4)).save(input_dir / name)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        choices = server.get("/api/object_info/LoadImage").json()["LoadImage"]["input"][
            "required"]["image"][0]
        if name in choices:
            break
        time.sleep(0.2)
    assert name in choices


# -- /system_stats ---------------------------------------------------------------------------

def test_system_stats_has_every_spec_field(server):
    r = server.get("/api/system_stats")
    assert r.status == 200
    stats = r.json()
    _validate("get", "/api/system_stats", 200, stats)
    schema = load_spec()["components"]["schemas"]["SystemStatsResponse"]["properties"]
    assert set(schema["system"]["properties"]) <= set(stats["system"])
    assert set(schema["devices"]["items"]["properties"]) <= set(stats["devices"][0])
    system = stats["system"]
    assert system["ram_total"] > system["ram_free"] > 0
    assert system["pytorch_version"].startswith("2.")
    assert system["required_frontend_version"] == system["comfyui_frontend_version"]
    assert system["installed_templates_version"] == system["required_templates_version"] != ""
    assert "serve" in system["argv"]
    device = stats["devices"][0]
    assert device["vram_total"] >= device["vram_free"] > 0
    assert server.get("/system_stats").json()["system"]["os"] == system["os"]


# -- /features -------------------------------------------------------------------------------

def test_features_announce_upload_limit_and_preview_metadata(server):
    r = server.get("/api/features")
    assert r.status == 200
    flags = r.json()
    _validate("get", "/api/features", 200, flags)
    assert flags["max_upload_size"] == 100 * 1024 * 1024
    assert flags["supports_preview_metadata"] is True
    assert r.headers["Cache-Control"].startswith("private")
    assert "Authorization" in r.headers["Vary"]
    assert server.get("/features").json() == flags


def test_features_follow_max_upload_size(make_server):
    srv = make_server("--max-upload-size", "7")
    assert srv.get("/api/features").json()["max_upload_size"] == 7 * 1024 * 1024


# -- /health ---------------------------------------------------------------------------------

def test_health_answers_ok_while_the_database_answers(server):
    for path in ("/health", "/api/health"):
        r = server.get(path)
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain")
        assert r.body == b"OK"


# -- small listings --------------------------------------------------------------------------

def test_node_replacements_and_global_subgraphs_are_empty_without_packs(server):
    for path in ("/api/node_replacements", "/node_replacements"):
        r = server.get(path)
        assert r.status == 200 and r.json() == {}
    r = server.get("/api/global_subgraphs")
    assert r.status == 200 and r.json() == {}
    _validate("get", "/api/global_subgraphs", 200, r.json())
    missing = server.get("/api/global_subgraphs/nope")
    assert missing.status == 404
    _validate("get", "/api/global_subgraphs/{id}", 404, missing.json())


def test_workflow_templates_and_i18n_without_packs(server):
    assert server.get("/api/workflow_templates").json() == {}
    assert server.get("/api/i18n").json() == {}
    assert server.get("/api/workflow_templates/nope/x.json").status == 404


def test_extensions_list_the_frontends_scripts(server):
    urls = server.get("/api/extensions").json()
    _validate("get", "/api/extensions", 200, urls)
    assert all(u.startswith("/extensions/") and u.endswith(".js") for u in urls)
    # Each listed script is served.
    assert server.get(urls[0]).status == 200
