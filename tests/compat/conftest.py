"""Fixtures: a base directory with the test packs in custom_nodes, and its registry."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

PACKS_DIR = Path(__file__).parent / "packs"


def install_packs(base: Path, names: list[str] | None = None) -> Path:
    """Copy the test packs (all, or ``names``) into ``base/custom_nodes``."""
    target = base / "custom_nodes"
    target.mkdir(parents=True, exist_ok=True)
    for entry in sorted(PACKS_DIR.iterdir()):
        if entry.name == "__pycache__" or (names is not None and entry.name not in names):
            continue
        if entry.is_dir():
            shutil.copytree(entry, target / entry.name,
                            ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(entry, target / entry.name)
    return target


def build(base: Path, **config_kwargs):
    from opencomfy.config import Config
    from opencomfy.nodes.setup import build_registry

    app = config_kwargs.pop("app", None)
    return build_registry(Config(base_directory=base, **config_kwargs), app)


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """Every test pack loaded once per test module."""
    base = tmp_path_factory.mktemp("compat-base")
    install_packs(base)
    registry = build(base)
    reports = {r.name: r for r in registry.custom_node_reports}
    return SimpleNamespace(base=base, registry=registry, reports=reports)
