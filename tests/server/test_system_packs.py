"""What custom node packs contribute besides nodes, over HTTP on a real server: extension
scripts (listed and served), translations, subgraph blueprints and example workflows."""

from __future__ import annotations

import json
import textwrap

import pytest

from tests.conformance.spec import response_validator
from tests.harness import Server

PACK_INIT = textwrap.dedent('''
    class DemoNode:
        RETURN_TYPES = ("INT",)
        FUNCTION = "run"
        CATEGORY = "demo"

        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"value": ("INT", {"default": 1})}}

        def run(self, value):
            return (value,)

    NODE_CLASS_MAPPINGS = {"DemoNode": DemoNode}
    WEB_DIRECTORY = "./js"
''')

SUBGRAPH = {"nodes": [], "links": [], "definitions": {"subgraphs": []}, "version": 0.4}


def _write(path, content) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content if isinstance(content, str) else json.dumps(content))


def make_packs(base) -> None:
    demo = base / "custom_nodes" / "demo_pack"
    _write(demo / "__init__.py", PACK_INIT)
    _write(demo / "js" / "demo.js", "export const demo = 1;\n")
    _write(demo / "js" / "lib" / "helper.js", "export const helper = 2;\n")
    _write(demo / "js" / "style.css", ".demo { color: red }\n")
    _write(demo / "locales" / "en" / "main.json", {"demo": {"title": "Demo"}, "shared": {"a": 1}})
    _write(demo / "locales" / "en" / "nodeDefs.json", {"DemoNode": {"display_name": "Demo"}})
    _write(demo / "locales" / "fr" / "main.json", {"demo": {"title": "Démo"}})
    _write(demo / "subgraphs" / "blue_box.json", SUBGRAPH)
    _write(demo / "example_workflows" / "first_steps.json", {"nodes": []})
    _write(demo / "example_workflows" / "notes.txt", "not a workflow")

    other = base / "custom_nodes" / "other_pack"
    _write(other / "__init__.py", "NODE_CLASS_MAPPINGS = {}\n")
    _write(other / "locales" / "en" / "main.json", {"shared": {"b": 2}})
    _write(other / "locales" / "en" / "commands.json", {"other.run": {"label": "Run"}})
    _write(other / "examples" / "second.json", {"nodes": []})
    _write(base / "custom_nodes" / "disabled_pack.disabled" / "locales" / "en" / "main.json",
           {"disabled": True})


@pytest.fixture(scope="module")
def pack_server(tmp_path_factory):
    base = tmp_path_factory.mktemp("packs")
    make_packs(base)
    srv = Server(base_dir=base).start()
    yield srv
    srv.stop()


def test_extensions_list_and_serve_pack_scripts(pack_server):
    urls = pack_server.get("/api/extensions").json()
    mine = [u for u in urls if u.startswith("/extensions/demo_pack/")]
    assert mine == ["/extensions/demo_pack/demo.js", "/extensions/demo_pack/lib/helper.js"]
    r = pack_server.get("/extensions/demo_pack/lib/helper.js")
    assert r.status == 200 and r.body == b"export const helper = 2;\n"
    assert "javascript" in r.headers["Content-Type"]
    assert pack_server.get("/extensions/demo_pack/style.css").status == 200


@pytest.mark.parametrize("path", ["/extensions/demo_pack/../__init__.py",
                                  "/extensions/demo_pack/%2e%2e/__init__.py",
                                  "/extensions/demo_pack/missing.js"])
def test_pack_files_outside_web_directory_are_not_served(pack_server, path):
    assert pack_server.get(path).status in (403, 404)


def test_i18n_merges_every_pack_per_locale(pack_server):
    i18n = pack_server.get("/api/i18n").json()
    assert set(i18n) == {"en", "fr"}
    en = i18n["en"]
    assert en["demo"] == {"title": "Demo"}
    assert en["shared"] == {"a": 1, "b": 2}
    assert en["nodeDefs"] == {"DemoNode": {"display_name": "Demo"}}
    assert en["commands"] == {"other.run": {"label": "Run"}}
    assert i18n["fr"] == {"demo": {"title": "Démo"}}
    assert pack_server.get("/i18n").json() == i18n


def test_global_subgraphs_list_and_detail(pack_server):
    listing = pack_server.get("/api/global_subgraphs").json()
    errors = list(response_validator("get", "/api/global_subgraphs", 200).iter_errors(listing))
    assert not errors
    [(key, entry)] = listing.items()
    assert entry == {"source": "custom_node", "name": "blue_box",
                     "info": {"node_pack": "demo_pack"}}
    detail = pack_server.get(f"/api/global_subgraphs/{key}").json()
    assert not list(response_validator("get", "/api/global_subgraphs/{id}", 200)
                    .iter_errors(detail))
    assert json.loads(detail["data"]) == SUBGRAPH
    assert pack_server.get(f"/global_subgraphs/{key}").json() == detail


def test_workflow_templates_of_packs(pack_server):
    templates = pack_server.get("/api/workflow_templates").json()
    assert templates == {"demo_pack": ["first_steps"], "other_pack": ["second"]}
    r = pack_server.get("/api/workflow_templates/demo_pack/first_steps.json")
    assert r.status == 200 and r.json() == {"nodes": []}
    assert pack_server.get("/workflow_templates/other_pack/second.json").status == 200
    for bad in ("/api/workflow_templates/demo_pack/..%2F__init__.py",
                "/api/workflow_templates/demo_pack/../__init__.py",
                "/api/workflow_templates/nope/first_steps.json"):
        assert pack_server.get(bad).status == 404, bad


def test_pack_node_is_in_the_catalogue(pack_server):
    info = pack_server.get("/api/object_info/DemoNode").json()
    assert info["DemoNode"]["input"]["required"]["value"] == ["INT", {"default": 1}]
    assert info["DemoNode"]["category"] == "demo"
