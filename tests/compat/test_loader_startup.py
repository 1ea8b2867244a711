"""Start-up as ComfyUI does it: prestartup scripts, whitelist, install.py never run, the
import-times block, a core class protected, packs installed as entry points."""

from __future__ import annotations

import logging
import os
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from opencomfy.engine import Engine
from tests.compat.conftest import build

PACKS = Path(__file__).parent / "packs_loader"
STARTUP_PACKS = ["prestart_env_pack", "prestart_fail_pack", "raising_pack", "core_override_pack"]


def install(base: Path, names: list[str]) -> Path:
    target = base / "custom_nodes"
    target.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copytree(PACKS / name, target / name, ignore=shutil.ignore_patterns("__pycache__"))
    return target


@pytest.fixture(scope="module")
def started(tmp_path_factory):
    base = tmp_path_factory.mktemp("loader-startup")
    install(base, STARTUP_PACKS)
    os.environ.pop("OPENCOMFY_TEST_PRESTART", None)
    handler = _Collect()
    logger = logging.getLogger("opencomfy.compat.loader")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        registry = build(base)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    reports = {r.name: r for r in registry.custom_node_reports}
    return SimpleNamespace(base=base, registry=registry, reports=reports, log=handler.text())


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def text(self) -> str:
        return "\n".join(r.getMessage() for r in self.records)


async def test_prestartup_script_runs_before_the_pack_imports(started):
    assert started.reports["prestart_env_pack"].success
    engine = Engine(started.registry)
    prompt = {"1": {"class_type": "PrestartEnvValue", "inputs": {}},
              "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}}
    validation = await engine.validate(prompt)
    result = await engine.run(prompt, prompt_id="p", execute_outputs=validation.outputs)
    assert result.outputs["2"]["text"] == ["set-by-prestartup"]


def test_a_failing_prestartup_script_is_logged_and_its_pack_still_loads(started):
    assert started.reports["prestart_fail_pack"].success
    assert "PrestartFailStillLoads" in started.registry
    block = started.log.split("Prestartup times for custom nodes:", 1)[1].split("\n\n")[0]
    lines = [line for line in block.strip().splitlines()]
    assert len(lines) == 2  # one line per pack with a prestartup script
    failed = [line for line in lines if "(PRESTARTUP FAILED)" in line]
    assert len(failed) == 1 and failed[0].endswith("prestart_fail_pack")
    assert "Failed to execute startup-script" in started.log


def test_install_py_is_never_run(started):
    pack = started.base / "custom_nodes" / "prestart_env_pack"
    assert not (pack / "INSTALL_RAN").exists()
    assert "has an install.py; opencomfy does not run it" in started.log


def test_a_pack_raising_at_import_is_reported_and_the_others_load(started):
    broken = started.reports["raising_pack"]
    assert not broken.success and "refuses to load on purpose" in broken.error
    assert all(started.reports[n].success for n in STARTUP_PACKS if n != "raising_pack")


def test_import_times_block_names_each_failure_with_its_reason(started):
    block = started.log.split("Import times for custom nodes:", 1)[1].split("\n\n")[0]
    lines = block.strip().splitlines()
    failed = [i for i, line in enumerate(lines) if "(IMPORT FAILED)" in line]
    assert len(failed) == 1 and lines[failed[0]].endswith("raising_pack")
    assert "ValueError: raising_pack refuses to load on purpose" in lines[failed[0] + 1]
    for name in ("prestart_env_pack", "prestart_fail_pack", "core_override_pack"):
        assert any(line.endswith(name) and "seconds:" in line for line in lines), name


def test_core_class_stays_the_core_one(started):
    registry = started.registry
    assert registry.get("PrimitiveInt").__module__.startswith("opencomfy.nodes")
    assert registry.node_info("PrimitiveInt")["display_name"] != "Hijacked Int"
    report = started.reports["core_override_pack"]
    assert report.skipped_nodes == ["PrimitiveInt"] and report.nodes == ["CoreOverrideOwn"]
    assert "tried to replace core node PrimitiveInt" in started.log


def test_disable_all_loads_only_the_whitelisted_packs(tmp_path):
    install(tmp_path, ["prestart_env_pack", "prestart_fail_pack", "core_override_pack"])
    os.environ.pop("OPENCOMFY_TEST_PRESTART", None)
    registry = build(tmp_path, disable_all_custom_nodes=True,
                     whitelist_custom_nodes=("prestart_fail_pack", "core_override_pack"))
    assert sorted(r.name for r in registry.custom_node_reports) == [
        "core_override_pack", "prestart_fail_pack"]
    assert "PrestartEnvValue" not in registry
    # The left-out pack's prestartup script did not run either.
    assert "OPENCOMFY_TEST_PRESTART" not in os.environ


def test_whitelist_alone_changes_nothing(tmp_path):
    install(tmp_path, ["prestart_fail_pack", "core_override_pack"])
    registry = build(tmp_path, whitelist_custom_nodes=("core_override_pack",))
    assert len(registry.custom_node_reports) == 2


def test_cli_flags_reach_the_config():
    from opencomfy.cli import build_parser, config_from_args

    args = build_parser().parse_args(["serve", "--disable-all-custom-nodes",
                                      "--whitelist-custom-nodes", "a", "b.py",
                                      "--enable-manager"])
    config = config_from_args(args)
    assert config.disable_all_custom_nodes and config.whitelist_custom_nodes == ("a", "b.py")
    assert config.enable_manager and not config.disable_manager_ui


@pytest.fixture
def entry_point_dist(tmp_path):
    """A pip-installed pack: a module plus a dist-info declaring the entry point."""
    site = tmp_path / "site"
    package = site / "opencomfy_ep_pack"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(
        "class EntryPointHello:\n"
        "    CATEGORY = 'tests/loader'\n    RETURN_TYPES = ('STRING',)\n    FUNCTION = 'run'\n"
        "    @classmethod\n    def INPUT_TYPES(cls):\n        return {'required': {}}\n"
        "    def run(self):\n        return ('from an entry point',)\n"
        "NODE_CLASS_MAPPINGS = {'EntryPointHello': EntryPointHello}\n")
    dist = site / "opencomfy_ep_pack-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: opencomfy-ep-pack\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[comfyui.custom_nodes]\nep_pack = opencomfy_ep_pack\n")
    sys.path.insert(0, str(site))
    yield
    sys.path.remove(str(site))
    sys.modules.pop("opencomfy_ep_pack", None)


def test_entry_point_packs_load_first_and_obey_the_whitelist(tmp_path, entry_point_dist):
    install(tmp_path / "a", ["core_override_pack"])
    registry = build(tmp_path / "a")
    reports = registry.custom_node_reports
    assert [(r.name, r.source, r.success) for r in reports] == [
        ("ep_pack", "entry_point", True), ("core_override_pack", "folder", True)]
    assert registry.get("EntryPointHello")().run() == ("from an entry point",)
    assert registry.node_info("EntryPointHello")["python_module"] == "custom_nodes.ep_pack"

    install(tmp_path / "b", ["core_override_pack"])
    registry = build(tmp_path / "b", disable_all_custom_nodes=True,
                     whitelist_custom_nodes=("core_override_pack",))
    assert [r.name for r in registry.custom_node_reports] == ["core_override_pack"]
