"""The frontend and its static trees over HTTP: `/`, its assets, `user.css`, `/templates`,
`/docs`, and `--front-end-root`."""

from __future__ import annotations

import re

import pytest

from tests.harness import Server


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    srv = Server(base_dir=tmp_path_factory.mktemp("frontend")).start()
    yield srv
    srv.stop()


def test_index_is_the_pinned_frontend_never_cached(web):
    r = web.get("/")
    assert r.status == 200
    assert r.headers["Content-Type"].startswith("text/html")
    assert r.headers["Cache-Control"] == "no-cache"
    assert b'<div id="vue-app">' in r.body


def test_index_assets_are_served(web):
    html = web.get("/").body.decode()
    scripts = re.findall(r'<script type="module" crossorigin src="\./([^"]+)"', html)
    styles = re.findall(r'<link rel="stylesheet" href="([a-z][^"]+\.css)"', html)
    assert scripts
    for path in scripts:
        r = web.get("/" + path)
        assert r.status == 200 and "javascript" in r.headers["Content-Type"]
        # Content-hashed build files may be kept by the browser for good.
        assert r.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    for path in styles:
        if path.startswith("api/"):
            continue  # the userdata route's, not a static file
        assert web.get("/" + path).status == 200, path


def test_user_css_is_empty_until_the_user_writes_one(web):
    r = web.get("/user.css")
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/css")
    assert r.body == b""
    css = web.base_dir / "user" / "default" / "user.css"
    css.parent.mkdir(parents=True, exist_ok=True)
    css.write_text("body { background: #123456 }")
    r = web.get("/user.css")
    assert r.status == 200 and b"#123456" in r.body
    css.unlink()


def test_templates_index_and_a_template(web):
    r = web.get("/templates/index.json")
    assert r.status == 200
    index = r.json()
    assert isinstance(index, list) and index
    first = index[0]["templates"][0]["name"]
    template = web.get(f"/templates/{first}.json")
    assert template.status == 200 and isinstance(template.json(), dict)
    assert web.get("/templates/index_logo.json").status == 200
    assert web.get("/templates/index.fr.json").status == 200


@pytest.mark.parametrize("path", ["/templates/../app.py", "/templates/%2e%2e/%2e%2e/etc/passwd",
                                  "/templates/no_such_template.json", "/docs/../x",
                                  "/docs/NoSuchNode/en.md", "/docs/%2e%2e/__init__.py",
                                  "/no/such/file.js"])
def test_missing_or_escaping_paths_are_404(web, path):
    assert web.get(path).status == 404


def test_node_docs(web):
    r = web.get("/docs/EmptyImage/en.md")
    assert r.status == 200
    assert r.headers["Content-Type"].startswith("text/markdown")
    assert b"Empty Image" in r.body


def test_front_end_root_replaces_the_package(make_server, tmp_path):
    root = tmp_path / "my-frontend"
    root.mkdir()
    (root / "index.html").write_text("<html>my own frontend</html>")
    (root / "app.js").write_text("console.log('mine')")
    srv = make_server("--front-end-root", str(root))
    assert srv.get("/").body == b"<html>my own frontend</html>"
    assert srv.get("/app.js").body == b"console.log('mine')"


def test_template_thumbnails_are_the_real_pictures(web):
    """The template browser asks for every card's thumbnail; the media packages that
    `comfyui-workflow-templates` pulls hold them, and we serve those bytes. An unknown name is 404."""
    from io import BytesIO

    from comfyui_workflow_templates_core import get_asset_path, iter_templates
    from PIL import Image

    served = 0
    for entry in list(iter_templates())[:40]:
        for asset in entry.assets:
            if not asset.filename.endswith(".webp"):
                continue
            r = web.get(f"/templates/{asset.filename}")
            assert r.status == 200, asset.filename
            assert "X-OpenComfy-Placeholder" not in r.headers
            assert r.body == open(get_asset_path(entry.template_id, asset.filename), "rb").read()
            assert Image.open(BytesIO(r.body)).size[0] > 0
            served += 1
    assert served >= 10
    assert web.get("/templates/not_a_template-1.webp").status == 404


def test_unhashed_assets_are_not_cached_for_good(web):
    r = web.get("/assets/favicon.ico")
    assert r.status == 200
    assert "immutable" not in r.headers.get("Cache-Control", "")
