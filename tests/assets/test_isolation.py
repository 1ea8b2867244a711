"""Two workspaces through the service layer: B gets 404 on every id of A and sees none of
A's tags, hashes or tasks (the identity layer will put workspace ids on requests)."""

from __future__ import annotations

import asyncio

import pytest

from opencomfy.assets import archive, library
from opencomfy.assets.errors import AssetImmutable, AssetNotFound, ContentNotFound
from opencomfy.assets.schemas import AssetQuery, PageRequest
from opencomfy.assets.service import AssetService
from opencomfy.blobs.local import LocalBlobStore
from opencomfy.db.database import Database
from opencomfy.tasks import TaskService
from tests.harness import new_postgres_database, postgres_admin_url


@pytest.fixture(params=["sqlite", "postgres"])
async def assets(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'iso.db'}"
    else:
        if not postgres_admin_url():
            pytest.skip("no PostgreSQL server (set OPENCOMFY_TEST_POSTGRES)")
        url = await asyncio.to_thread(new_postgres_database)
    db = await Database.open(url)
    service = AssetService(db=db, store=LocalBlobStore(tmp_path / "blobs"))
    await service.open()
    yield service
    await service.close()
    await db.close()


async def _create(service: AssetService, ws: str, data: bytes, name: str, tags: list[str]) -> dict:
    staged = service.store.stage()
    staged.write(data)
    staged.finish()
    asset, _ = await service.create_from_staged(workspace_id=ws, staged=staged, name=name, tags=tags)
    return asset


async def test_another_workspace_gets_404_everywhere(assets):
    a = await _create(assets, "A", b"secret bytes", "secret.png", ["input", "private-tag"])
    aid = a["id"]
    for call in (
        assets.get(workspace_id="B", asset_id=aid),
        assets.update(workspace_id="B", asset_id=aid, changes={"name": "stolen"}),
        assets.delete(workspace_id="B", asset_id=aid),
        assets.change_tags(workspace_id="B", asset_id=aid, add=["x"]),
        assets.content(workspace_id="B", asset_id=aid),
    ):
        with pytest.raises(AssetNotFound):
            await call
    with pytest.raises(ContentNotFound):
        await assets.create_from_hash(workspace_id="B", digest=a["asset_hash"], tags=["input"])
    assert not await assets.has_hash(workspace_id="B", digest=a["asset_hash"])
    page = await assets.page(workspace_id="B", query=AssetQuery(), page=PageRequest())
    assert page["total"] == 0 and page["assets"] == []
    by_hash = await assets.page(workspace_id="B", query=AssetQuery(asset_hash=a["asset_hash"]),
                                page=PageRequest())
    assert by_hash["total"] == 0
    assert await assets.tag_histogram(workspace_id="B", query=AssetQuery(), limit=100) == {}
    tags = await assets.list_tags(workspace_id="B", prefix=None, by_name=False, offset=0, limit=100,
                                  include_zero=False)
    assert tags["tags"] == [] and tags["total"] == 0
    wf = {"1": {"class_type": "LoadImage", "inputs": {"image": "secret.png"}}}
    assert await library.assets_of_workflow(service=assets, workspace_id="B", workflow=wf) == []
    assert len(await library.assets_of_workflow(service=assets, workspace_id="A", workflow=wf)) == 1
    # A still has everything, untouched
    assert (await assets.get(workspace_id="A", asset_id=aid))["name"] == "secret.png"
    hist = await assets.tag_histogram(workspace_id="A", query=AssetQuery(), limit=100)
    assert hist == {"input": 1, "private-tag": 1}


async def test_same_content_in_two_workspaces_is_stored_once(assets):
    a = await _create(assets, "A", b"shared", "a.bin", ["input"])
    b = await _create(assets, "B", b"shared", "b.bin", ["input"])
    assert a["asset_hash"] == b["asset_hash"]
    blobs = [p for p in assets.store.root.rglob("*") if p.is_file() and ".staging" not in p.parts]
    assert len(blobs) == 1
    await assets.delete(workspace_id="A", asset_id=a["id"])
    _, path, _ = await assets.content(workspace_id="B", asset_id=b["id"])
    assert path.read_bytes() == b"shared"
    await assets.delete(workspace_id="B", asset_id=b["id"])
    assert [p for p in assets.store.root.rglob("*") if p.is_file() and ".staging" not in p.parts] == []


async def test_export_takes_only_the_callers_assets(assets):
    a = await _create(assets, "A", b"a-only", "a.png", ["output"])
    tasks = TaskService(db=assets.db)
    payload = archive.check_export_request({"asset_ids": [a["id"]]})

    async def work(ctx):
        return await archive.run_export(ctx, service=assets)

    row, _ = await tasks.submit(workspace_id="B", task_name="asset_export", payload=payload, work=work)
    await tasks.wait(row["id"])
    done = await tasks.get(workspace_id="B", task_id=row["id"])
    assert done["status"] == "completed" and done["result"]["asset_count"] == 0
    assert await tasks.get(workspace_id="A", task_id=row["id"]) is None


async def test_import_of_published_assets(assets):
    pub = await _create(assets, library.PUBLIC_WORKSPACE, b"public model", "pub.safetensors.txt", ["models"])
    infos = await library.import_published(service=assets, workspace_id="A", asset_ids=[pub["id"]],
                                           share_id=None)
    assert len(infos) == 1 and infos[0]["id"] != pub["id"] and infos[0]["public"] and infos[0]["model"]
    mine = await assets.get(workspace_id="A", asset_id=infos[0]["id"])
    assert mine["asset_hash"] == pub["asset_hash"] and mine["is_immutable"] is True
    with pytest.raises(AssetImmutable):
        await assets.update(workspace_id="A", asset_id=mine["id"], changes={"name": "x"})
    with pytest.raises(AssetImmutable):
        await assets.delete(workspace_id="A", asset_id=mine["id"])
    # deduplicated by hash: importing again returns the same record
    again = await library.import_published(service=assets, workspace_id="A", asset_ids=[pub["id"]],
                                           share_id=None)
    assert again[0]["id"] == infos[0]["id"]


async def test_totals_follow_inserts_and_deletes(assets):
    from sqlalchemy import func, select

    from opencomfy.assets.models import Asset

    a = await _create(assets, "A", b"one", "1.bin", ["input"])
    await _create(assets, "A", b"two", "2.bin", ["input"])
    await _create(assets, "B", b"three", "3.bin", ["input"])
    await assets.delete(workspace_id="A", asset_id=a["id"])
    for ws, expected in (("A", 1), ("B", 1), ("C", 0)):
        page = await assets.page(workspace_id=ws, query=AssetQuery(), page=PageRequest())
        async with assets.db.read() as conn:
            real = (await conn.execute(select(func.count()).select_from(Asset).where(
                Asset.workspace_id == ws))).scalar_one()
        assert page["total"] == real == expected
