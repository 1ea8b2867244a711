"""The custom-node loader: which packs load, what they register, what is refused."""

from __future__ import annotations

import sys

from aiohttp import web

from tests.compat.conftest import PACKS_DIR, build, install_packs

GOOD_PACKS = {"v1_pack", "v3_pack", "relative_pack", "single_file_pack", "override_pack",
              "model_pack"}


def test_every_pack_is_reported_and_only_the_broken_one_failed(loaded):
    assert set(loaded.reports) == GOOD_PACKS | {"broken_pack"}
    for name in GOOD_PACKS:
        assert loaded.reports[name].success, loaded.reports[name].error
    broken = loaded.reports["broken_pack"]
    assert not broken.success
    assert "opencomfy_test_missing_dependency" in broken.error
    assert broken.seconds >= 0 and broken.nodes == []


def test_disabled_and_non_python_entries_are_skipped(loaded):
    assert "disabled_pack" not in loaded.reports and "disabled_pack.disabled" not in loaded.reports
    assert "notes" not in loaded.reports


def test_nodes_of_v1_v3_relative_and_single_file_packs_are_registered(loaded):
    registry = loaded.registry
    for class_type in ("V1Add", "V1ExpandSum", "V1SaveImage", "V3Multiply", "V3LazySwitch",
                       "RelativeDouble", "SingleFileHello", "OverridePackOwn"):
        assert class_type in registry, class_type
    assert loaded.reports["v3_pack"].nodes == ["V3Multiply", "V3LazySwitch", "V3AsyncSleep",
                                               "V3Gate", "V3PreviewImage", "V3Invert"]


def test_python_module_and_display_names_are_as_comfyui_reports_them(loaded):
    registry = loaded.registry
    info = registry.node_info("V1Add")
    assert info["python_module"] == "custom_nodes.v1_pack"
    assert info["display_name"] == "Add (V1 pack)"
    assert registry.node_info("SingleFileHello")["python_module"] == "custom_nodes.single_file_pack"
    assert registry.node_info("V3Multiply")["python_module"] == "custom_nodes.v3_pack"
    assert registry.node_info("V3Multiply")["display_name"] == "Multiply (V3)"


def test_a_pack_cannot_replace_a_core_class(loaded):
    registry = loaded.registry
    save = registry.get("SaveImage")
    assert save.__module__.startswith("opencomfy.nodes"), save
    assert registry.node_info("SaveImage")["display_name"] == "Save Image"
    assert registry.node_info("SaveImage")["python_module"] == "nodes"
    assert loaded.reports["override_pack"].skipped_nodes == ["SaveImage"]
    assert loaded.reports["override_pack"].nodes == ["OverridePackOwn"]


def test_relative_imports_across_modules_work(loaded):
    cls = loaded.registry.get("RelativeDouble")
    assert cls().run(5) == (110,)
    assert cls.CATEGORY == "relative_pack"


def test_core_classes_are_reexported_and_subclassable(loaded):
    import nodes

    cls = loaded.registry.get("V1SaveImage")
    assert issubclass(cls, nodes.SaveImage)
    assert nodes.SaveImage is loaded.registry.get("SaveImage")
    assert cls.INPUT_TYPES() == nodes.SaveImage.INPUT_TYPES()


def test_node_mappings_are_live_views_of_the_registry(loaded):
    import nodes

    assert nodes.NODE_CLASS_MAPPINGS["V1Add"] is loaded.registry.get("V1Add")
    assert len(nodes.NODE_CLASS_MAPPINGS) == len(loaded.registry)
    assert nodes.NODE_DISPLAY_NAME_MAPPINGS["V1ShowInt"] == "Show Int (V1 pack)"
    assert nodes.MAX_RESOLUTION == 16384
    assert nodes.LOADED_MODULE_DIRS["v1_pack"].endswith("v1_pack")


def test_web_directory_is_recorded(loaded):
    import nodes

    web_dir = loaded.registry.web_directories["v1_pack"]
    assert (web_dir / "js" / "v1pack.js").is_file()
    assert nodes.EXTENSION_WEB_DIRS["v1_pack"] == str(web_dir)
    assert "v3_pack" not in loaded.registry.web_directories


def test_broken_pack_leaves_nothing_in_sys_modules(loaded):
    assert not any(name.endswith("broken_pack") for name in sys.modules)


def test_disable_all_custom_nodes(tmp_path):
    install_packs(tmp_path, ["v1_pack"])
    registry = build(tmp_path, disable_all_custom_nodes=True)
    assert "V1Add" not in registry and "SaveImage" in registry
    assert registry.custom_node_reports == []


def test_loading_twice_in_one_process_gives_fresh_modules(tmp_path):
    install_packs(tmp_path / "a", ["relative_pack"])
    install_packs(tmp_path / "b", ["relative_pack"])
    constants = tmp_path / "b" / "custom_nodes" / "relative_pack" / "constants.py"
    constants.write_text(constants.read_text().replace("OFFSET = 100", "OFFSET = 1000"))
    first = build(tmp_path / "a").get("RelativeDouble")
    second = build(tmp_path / "b").get("RelativeDouble")
    assert first().run(1) == (102,)
    assert second().run(1) == (1002,)


async def test_pack_routes_answer_at_bare_path_and_under_api(tmp_path, aiohttp_client):
    install_packs(tmp_path, ["v1_pack", "v3_pack"])
    app = web.Application()
    registry = build(tmp_path, app=app)
    assert "V3Multiply" in registry  # the async entry point ran although a loop is running
    client = await aiohttp_client(app)
    for path in ("/v1pack/hello", "/api/v1pack/hello"):
        resp = await client.get(path)
        assert resp.status == 200, path
        body = await resp.json()
        assert body["hello"] == "v1pack" and body["max_resolution"] == 16384
        assert body["output_dir"] == str((tmp_path / "output").resolve())
    resp = await client.post("/api/v1pack/echo", json={"x": 1})
    assert (await resp.json()) == {"echo": {"x": 1}}

    import server

    assert server.PromptServer.instance.app is app
    assert server.PromptServer.instance.loop is not None


def test_packs_dir_is_not_importable_as_a_test_package():
    # The packs are copied into a base directory; they are not part of the tests package.
    assert not (PACKS_DIR / "__init__.py").exists()


def test_without_an_app_packs_still_find_one_to_add_routes_to(tmp_path):
    (tmp_path / "custom_nodes").mkdir()
    (tmp_path / "custom_nodes" / "app_pack.py").write_text(
        "from server import PromptServer\n"
        "async def handler(request):\n    return None\n"
        "PromptServer.instance.app.router.add_get('/app_pack', handler)\n"
        "NODE_CLASS_MAPPINGS = {}\n")
    registry = build(tmp_path)  # no app, as in a worker process
    assert [(r.name, r.success) for r in registry.custom_node_reports] == [("app_pack", True)]
