"""Per-workspace file roots (`--auth required`): what workspace A uploads, saves or previews
is reachable by A alone, by every path: the file lists (/internal/files, the combo choices of
/api/object_info), the loader nodes (LoadImage, LoadImageMask, LoadImageOutput, LoadLatent,
`[output]` / `[temp]` annotations, `../`), and /api/view. One server for the module."""

from __future__ import annotations

import io
import time
import uuid

import pytest
from PIL import Image

from opencomfy.files.workspace_roots import dir_name
from tests.harness import multipart
from tests.identity.tenants import Tenant, new_tenant


def _png(colour: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (4, 4), colour).save(buf, format="PNG")
    return buf.getvalue()


def _upload(t: Tenant, name: str, data: bytes) -> dict:
    body, ctype = multipart({}, {"image": (name, data)})
    r = t.request("POST", "/api/upload/image", data=body, headers={"Content-Type": ctype})
    assert r.status == 200, r.body
    return r.json()


def _queue(t: Tenant, graph: dict):
    return t.post("/api/prompt", {"prompt": graph})


def _finished(t: Tenant, prompt_id: str) -> dict:
    """The job's history entry once it is done (it must complete)."""
    deadline = time.monotonic() + 60
    while t.get(f"/api/jobs/{prompt_id}").json()["status"] not in ("completed", "failed"):
        assert time.monotonic() < deadline, "the job did not finish"
        time.sleep(0.05)
    entry = t.get(f"/api/history/{prompt_id}").json()[prompt_id]
    assert entry["status"]["status_str"] == "success", entry["status"]
    return entry


def _load_and_save(loader: dict, prefix: str) -> dict:
    """loader(node 1) -> SaveImage; for LoadImageMask a MaskToImage in between."""
    graph = {"1": loader}
    image = ["1", 0]
    if loader["class_type"] == "LoadImageMask":
        graph["2"] = {"class_type": "MaskToImage", "inputs": {"mask": ["1", 0]}}
        image = ["2", 0]
    graph["3"] = {"class_type": "SaveImage", "inputs": {"images": image, "filename_prefix": prefix}}
    return graph


@pytest.fixture(scope="module")
def world(auth_server):
    """A with one upload (input), one saved image (output), one preview (temp), one saved
    latent (output) and a `.latent` in its input; B with nothing."""
    a, b = new_tenant(auth_server), new_tenant(auth_server)
    tag = uuid.uuid4().hex[:8]
    files = {"input": f"a_secret_{tag}.png", "latent_input": f"a_{tag}.latent"}
    assert _upload(a, files["input"], _png((200, 10, 10)))["name"] == files["input"]
    assert _upload(a, files["latent_input"], b"not really a latent")["name"] == files["latent_input"]
    r = _queue(a, {
        "1": {"class_type": "EmptyImage",
              "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0x00FF00}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0],
                                                    "filename_prefix": f"Asecret_{tag}"}},
        "3": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
        "4": {"class_type": "EmptyLatentImage",
              "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "5": {"class_type": "SaveLatent", "inputs": {"samples": ["4", 0],
                                                     "filename_prefix": f"Alat_{tag}"}},
    })
    assert r.status == 200, r.body
    outputs = _finished(a, r.json()["prompt_id"])["outputs"]
    (saved,) = outputs["2"]["images"]
    (preview,) = outputs["3"]["images"]
    (latent,) = outputs["5"]["latents"]
    assert saved["type"] == "output" and preview["type"] == "temp"
    files.update(output=saved["filename"], temp=preview["filename"], latent=latent["filename"])
    return {"a": a, "b": b, "files": files, "server": auth_server, "tag": tag}


def test_files_land_in_the_workspace_folder(world):
    base, a, files = world["server"].base_dir, world["a"], world["files"]
    own = dir_name(a.workspace_id)
    assert (base / "input" / own / files["input"]).is_file()
    assert (base / "output" / own / files["output"]).is_file()
    assert not (base / "input" / files["input"]).exists()
    assert not (base / "output" / files["output"]).exists()
    # The job's output is recorded as A's asset (from A's folder), named as A sees it.
    deadline = time.monotonic() + 10
    while not (found := a.get(f"/api/assets?name_contains={files['output']}&include_tags=output"
                              ).json()["assets"]):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert [x["name"] for x in found] == [files["output"]]
    assert world["b"].get(f"/api/assets?name_contains={files['output']}").json()["assets"] == []


@pytest.mark.parametrize("kind", ["input", "output", "temp"])
def test_b_cannot_list_a_files(world, kind):
    a, b, files = world["a"], world["b"], world["files"]
    name = files[kind]
    assert name in a.get(f"/internal/files/{kind}").json()
    listed = b.get(f"/internal/files/{kind}")
    assert listed.status == 200 and name not in listed.json()


def test_object_info_lists_only_own_files(world):
    a, b, files = world["a"], world["b"], world["files"]
    for node, field in (("LoadImage", "image"), ("LoadImageMask", "image"), ("LoadLatent", "latent")):
        wanted = files["latent_input"] if node == "LoadLatent" else files["input"]
        mine = a.get(f"/api/object_info/{node}").json()[node]["input"]["required"][field][0]
        theirs = b.get(f"/api/object_info/{node}").json()[node]["input"]["required"][field][0]
        assert wanted in mine, node
        assert wanted not in theirs, node
        everything = b.get("/api/object_info").json()[node]["input"]["required"][field][0]
        assert wanted not in everything, node


def test_object_info_etag_is_per_workspace(world):
    a, b = world["a"], world["b"]
    first = a.get("/api/object_info")
    etag = first.headers["ETag"]
    assert b.get("/api/object_info").headers["ETag"] != etag
    assert a.get("/api/object_info", headers={"If-None-Match": etag}).status == 304
    # B revalidating with A's tag gets its own catalogue, never A's as "not modified".
    theirs = b.get("/api/object_info", headers={"If-None-Match": etag})
    assert theirs.status == 200 and world["files"]["input"].encode() not in theirs.body
    node_tag = a.get("/api/object_info/LoadImage").headers["ETag"]
    assert b.get("/api/object_info/LoadImage").headers["ETag"] != node_tag


def _loaders(files: dict) -> list[dict]:
    return [
        {"class_type": "LoadImage", "inputs": {"image": files["input"]}},
        {"class_type": "LoadImage", "inputs": {"image": f"{files['input']} [input]"}},
        {"class_type": "LoadImage", "inputs": {"image": f"{files['output']} [output]"}},
        {"class_type": "LoadImage", "inputs": {"image": f"{files['temp']} [temp]"}},
        {"class_type": "LoadImageMask", "inputs": {"image": files["input"], "channel": "red"}},
        {"class_type": "LoadImageOutput", "inputs": {"image": f"{files['output']} [output]"}},
    ]


def test_b_cannot_load_a_files_through_nodes(world):
    a, b, files = world["a"], world["b"], world["files"]
    own = dir_name(a.workspace_id)
    loaders = _loaders(files) + [
        {"class_type": "LoadImage", "inputs": {"image": f"../{own}/{files['input']}"}},
        {"class_type": "LoadImageOutput", "inputs": {"image": f"../{own}/{files['output']} [output]"}},
    ]
    for loader in loaders:
        r = _queue(b, _load_and_save(loader, f"Bcopy_{world['tag']}"))
        assert r.status == 400, (loader, r.body)
    latent = {"1": {"class_type": "LoadLatent", "inputs": {"latent": f"{files['latent']} [output]"}},
              "2": {"class_type": "SaveLatent", "inputs": {"samples": ["1", 0],
                                                           "filename_prefix": "Bcopy"}}}
    assert _queue(b, latent).status == 400
    # Nothing B ran wrote a copy anywhere.
    assert not list(world["server"].base_dir.glob("output/**/Bcopy_*"))


def test_a_loads_its_own_files(world):
    a, files, tag = world["a"], world["files"], world["tag"]
    for i, loader in enumerate(_loaders(files)):
        prefix = f"Acopy_{tag}_{i}"
        r = _queue(a, _load_and_save(loader, prefix))
        assert r.status == 200, (loader, r.body)
        (image,) = _finished(a, r.json()["prompt_id"])["outputs"]["3"]["images"]
        view = a.get(f"/api/view?filename={image['filename']}&type=output")
        assert view.status == 200 and view.body.startswith(b"\x89PNG")
    r = _queue(a, {"1": {"class_type": "LoadLatent",
                         "inputs": {"latent": f"{files['latent']} [output]"}},
                   "2": {"class_type": "SaveLatent", "inputs": {"samples": ["1", 0],
                                                                "filename_prefix": f"Alat2_{tag}"}}})
    assert r.status == 200, r.body
    _finished(a, r.json()["prompt_id"])


def test_b_cannot_view_a_files(world):
    a, b, files = world["a"], world["b"], world["files"]
    for kind in ("input", "output", "temp"):
        query = f"/api/view?filename={files[kind]}&type={kind}"
        assert a.get(query).status == 200, kind
        assert b.get(query).status == 404, kind
        assert b.get(query + "&res=64").status == 404, kind
    own = dir_name(a.workspace_id)
    # Through the shared root (a legacy path) A's folder is not reachable either.
    assert b.get(f"/api/view?filename={files['input']}&subfolder=../{own}&type=input").status in (400, 404)
    assert b.get(f"/api/view?filename={files['input']}&subfolder={own}&type=input").status == 404


def test_b_uses_the_same_names_in_its_own_folder(world):
    a, b, files = world["a"], world["b"], world["files"]
    theirs = _png((1, 2, 3))
    assert _upload(b, files["input"], theirs)["name"] == files["input"]  # no clash: own folder
    assert b.get(f"/api/view?filename={files['input']}&type=input").body == theirs
    assert a.get(f"/api/view?filename={files['input']}&type=input").body == _png((200, 10, 10))


async def _move_record(server, old: str, new: str) -> None:
    """Point an asset record at another path (the record an upload got before this layout)."""
    from sqlalchemy import update

    from opencomfy.assets.repository import A, Asset
    from opencomfy.db.database import Database
    from tests.identity.tenants import database_url

    db = await Database.open(database_url(server), migrate=False)
    try:
        async with db.write() as conn:
            await conn.execute(update(Asset.__table__).where(A.file_path == old).values(file_path=new))
    finally:
        await db.close()


def test_legacy_files_in_the_shared_root_stay_with_their_owner(world):
    """A file uploaded before the per-workspace layout lies in the shared root with an asset
    record: its owner still views it, nobody else does, and it is listed for no one."""
    import asyncio

    a, b, server = world["a"], world["b"], world["server"]
    name = f"legacy_{world['tag']}.png"
    data = _png((9, 8, 7))
    _upload(a, name, data)
    own = server.base_dir / "input" / dir_name(a.workspace_id) / name
    legacy = server.base_dir / "input" / name
    own.rename(legacy)
    asyncio.run(_move_record(server, str(own.resolve()), str(legacy.resolve())))
    assert a.get(f"/api/view?filename={name}&type=input").body == data
    assert b.get(f"/api/view?filename={name}&type=input").status == 404
    assert name not in a.get("/internal/files/input").json()
    assert _queue(b, _load_and_save({"class_type": "LoadImage", "inputs": {"image": name}},
                                    "Blegacy")).status == 400
