"""System routes on an in-process app with stand-in services, for what a real server cannot
show on demand: an unreachable database, a GPU, a process without torch loaded."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest
from aiohttp import web

from opencomfy.catalogue import Catalogue
from opencomfy.config import Config
from opencomfy.engine.registry import NodeRegistry
from opencomfy.http import system
from opencomfy.http.routing import SERVICES


class PingableDatabase:
    """Like opencomfy's Database: `ping()` answers False when the database does not."""

    def __init__(self, *, fails: bool = False, raises: bool = False) -> None:
        self.fails, self.raises = fails, raises
        self.pings = 0

    async def ping(self) -> bool:
        self.pings += 1
        if self.raises:
            raise ConnectionRefusedError("database is down")
        return not self.fails


class SessionOnlyDatabase:
    """A Database without `ping`: health falls back to `SELECT 1` through a session."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    def session(self):
        db = self

        class Session:
            async def __aenter__(self):
                return self

            async def __aexit__(self, *exc):
                return False

            async def execute(self, statement):
                db.statements.append(str(statement))

        return Session()


def make_app(tmp_path: Path, db) -> web.Application:
    config = Config(base_directory=tmp_path)
    registry = NodeRegistry()
    app = web.Application()
    app[SERVICES] = types.SimpleNamespace(config=config, registry=registry, db=db,
                                          catalogue=Catalogue(registry, config))
    system.setup(app)
    return app


async def test_health_is_503_when_the_database_fails(aiohttp_client, tmp_path):
    db = PingableDatabase(fails=True)
    client = await aiohttp_client(make_app(tmp_path, db))
    r = await client.get("/health")
    assert r.status == 503
    assert r.headers["Content-Type"].startswith("text/plain")
    assert await r.text() == "Service Unavailable"
    db.fails, db.raises = False, True
    assert (await client.get("/health")).status == 503
    db.raises = False
    r = await client.get("/api/health")
    assert r.status == 200 and await r.text() == "OK"
    assert db.pings == 3


async def test_health_without_ping_runs_select_1(aiohttp_client, tmp_path):
    db = SessionOnlyDatabase()
    client = await aiohttp_client(make_app(tmp_path, db))
    r = await client.get("/health")
    assert r.status == 200
    assert db.statements == ["SELECT 1"]


def test_system_stats_does_not_import_torch(monkeypatch, tmp_path):
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    stats = system.system_stats(Config(base_directory=tmp_path))
    assert "torch" not in sys.modules
    assert stats["system"]["pytorch_version"].startswith("2.")  # from the package metadata
    [cpu] = stats["devices"]
    assert cpu["type"] == "cpu" and cpu["vram_total"] > 0


def test_system_stats_reports_cuda_devices_when_torch_is_loaded(monkeypatch, tmp_path):
    gib = 1024 ** 3
    cuda = types.SimpleNamespace(
        is_available=lambda: True, device_count=lambda: 2,
        mem_get_info=lambda i: ((10 + i) * gib, 80 * gib),
        memory_reserved=lambda i: 4 * gib, memory_allocated=lambda i: 1 * gib,
        get_device_name=lambda i: "Fake H100",
    )
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(__version__="9.9.9", cuda=cuda))
    stats = system.system_stats(Config(base_directory=tmp_path))
    assert stats["system"]["pytorch_version"] == "9.9.9"
    assert [d["index"] for d in stats["devices"]] == [0, 1]
    second = stats["devices"][1]
    assert second["type"] == "cuda" and "Fake H100" in second["name"]
    assert (second["vram_total"], second["vram_free"]) == (80 * gib, 11 * gib)
    assert (second["torch_vram_total"], second["torch_vram_free"]) == (4 * gib, 3 * gib)


async def test_object_info_follows_the_registry(aiohttp_client, tmp_path):
    app = make_app(tmp_path, PingableDatabase())
    registry = app[SERVICES].registry
    client = await aiohttp_client(app)
    assert await (await client.get("/api/object_info")).json() == {}

    class Node:
        RETURN_TYPES = ("INT",)
        FUNCTION = "run"

        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {}}

    registry.add("Late", Node)
    r = await client.get("/api/object_info")
    assert list(await r.json()) == ["Late"]


@pytest.mark.parametrize("path", ["/object_info", "/system_stats", "/features", "/extensions",
                                  "/i18n", "/node_replacements", "/global_subgraphs",
                                  "/workflow_templates", "/health"])
async def test_every_route_answers_bare_and_under_api(aiohttp_client, tmp_path, path):
    client = await aiohttp_client(make_app(tmp_path, PingableDatabase()))
    bare, api = await client.get(path), await client.get("/api" + path)
    assert bare.status == api.status == 200
    assert await bare.read() == await api.read() or path in ("/system_stats",)
