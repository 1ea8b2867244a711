"""The catalogue: built once, rebuilt only when nodes or watched folders change."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import pytest

from opencomfy.catalogue import Catalogue, etag_matches
from opencomfy.config import Config
from opencomfy.engine.registry import NodeRegistry


class CountingNode:
    """A V1 node whose INPUT_TYPES counts its calls and lists a folder's files."""

    calls = 0
    folder: Path | None = None
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "run"
    CATEGORY = "test"

    @classmethod
    def INPUT_TYPES(cls):
        CountingNode.calls += 1
        names = sorted(os.listdir(cls.folder)) if cls.folder and cls.folder.is_dir() else []
        return {"required": {"name": (names,)}}


class BrokenNode:
    RETURN_TYPES = ()
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        raise RuntimeError("this pack is broken")


@pytest.fixture
def setup(tmp_path):
    config = Config(base_directory=tmp_path)
    (tmp_path / "models" / "checkpoints").mkdir(parents=True)
    (tmp_path / "input").mkdir()
    CountingNode.calls = 0
    CountingNode.folder = tmp_path / "models" / "checkpoints"
    registry = NodeRegistry()
    registry.add("Counting", CountingNode, display_name="Counting node")
    return registry, config, tmp_path


def test_built_once_and_served_as_the_same_bytes(setup):
    registry, config, _ = setup
    catalogue = Catalogue(registry, config, check_interval=3600)
    first = catalogue.snapshot_sync()
    second = catalogue.snapshot_sync()
    assert first is second
    assert CountingNode.calls == 1
    body = json.loads(first.body)
    assert body["Counting"]["display_name"] == "Counting node"
    assert body["Counting"]["input"]["required"]["name"] == [[]]
    assert first.etag.startswith('"') and first.etag.endswith('"')


def test_per_node_bodies_are_slices_of_the_whole(setup):
    registry, config, _ = setup
    registry.add("Other", CountingNode)
    snap = Catalogue(registry, config).snapshot_sync()
    whole = json.loads(snap.body)
    assert set(whole) == {"Counting", "Other"}
    assert json.loads(snap.node_body("Other")) == {"Other": whole["Other"]}
    assert snap.node_body("Missing") == b"{}"
    assert snap.node_etag("Other") != snap.etag


def test_rebuilt_when_the_node_set_changes(setup):
    registry, config, _ = setup
    catalogue = Catalogue(registry, config, check_interval=3600)
    first = catalogue.snapshot_sync()
    registry.add("Second", CountingNode)
    second = catalogue.snapshot_sync()
    assert second is not first
    assert "Second" in json.loads(second.body)
    assert second.etag != first.etag


def test_rebuilt_when_a_model_folder_changes(setup):
    registry, config, base = setup
    catalogue = Catalogue(registry, config, check_interval=0)
    first = catalogue.snapshot_sync()
    # Let the folder's mtime settle so that the check below is about the new file only.
    past = time.time() - 10
    os.utime(base / "models" / "checkpoints", (past, past))
    catalogue.invalidate()
    first = catalogue.snapshot_sync()
    calls = CountingNode.calls
    assert catalogue.snapshot_sync() is first and CountingNode.calls == calls

    (base / "models" / "checkpoints" / "model.safetensors").write_bytes(b"x")
    second = catalogue.snapshot_sync()
    assert second is not first
    assert json.loads(second.body)["Counting"]["input"]["required"]["name"] == [["model.safetensors"]]


def test_a_new_subfolder_counts_as_a_change(setup):
    registry, config, base = setup
    catalogue = Catalogue(registry, config, check_interval=0)
    sub = base / "models" / "checkpoints" / "sdxl"
    sub.mkdir()
    past = time.time() - 10
    for folder in (sub, sub.parent):
        os.utime(folder, (past, past))
    first = catalogue.snapshot_sync()
    (sub / "a.safetensors").write_bytes(b"x")  # changes sdxl's mtime, not checkpoints'
    assert catalogue.snapshot_sync() is not first


def test_folder_check_is_throttled(setup):
    registry, config, base = setup
    catalogue = Catalogue(registry, config, check_interval=3600)
    first = catalogue.snapshot_sync()
    (base / "models" / "checkpoints" / "new.safetensors").write_bytes(b"x")
    # Within the check interval the folder is not looked at: the cached bytes are served.
    assert catalogue.snapshot_sync() is first


def test_a_broken_node_is_left_out(setup):
    registry, config, _ = setup
    registry.add("Broken", BrokenNode)
    snap = Catalogue(registry, config).snapshot_sync()
    assert set(json.loads(snap.body)) == {"Counting"}
    assert snap.node_body("Broken") == b"{}"


def test_values_json_cannot_encode_are_converted(setup):
    registry, config, _ = setup

    class SetNode(CountingNode):
        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"path": ("STRING", {"default": Path("/a/b")}),
                                 "choices": ({"x"},)}}

    registry.add("SetNode", SetNode)
    info = json.loads(Catalogue(registry, config).snapshot_sync().node_body("SetNode"))
    assert info["SetNode"]["input"]["required"] == {"path": ["STRING", {"default": "/a/b"}],
                                                    "choices": [["x"]]}


async def test_concurrent_readers_share_one_build(setup):
    registry, config, _ = setup

    class SlowNode(CountingNode):
        @classmethod
        def INPUT_TYPES(cls):
            time.sleep(0.2)
            return super().INPUT_TYPES()

    registry.add("Slow", SlowNode)
    catalogue = Catalogue(registry, config)
    snaps = await asyncio.gather(*(catalogue.snapshot() for _ in range(8)))
    assert all(s is snaps[0] for s in snaps)
    assert CountingNode.calls == 2  # Counting and Slow, each once


def test_etag_matching():
    assert etag_matches('"abc"', '"abc"')
    assert etag_matches('W/"abc"', '"abc"')
    assert etag_matches('"x", "abc"', '"abc"')
    assert etag_matches("*", '"abc"')
    assert not etag_matches('"abd"', '"abc"')
    assert not etag_matches(None, '"abc"')
    assert not etag_matches("", '"abc"')


def test_holes_in_a_definition_are_filled_to_match_the_spec(setup):
    registry, config, _ = setup

    class V3Like:
        @classmethod
        def GET_NODE_INFO_V1(cls):
            return {"display_name": None, "description": None, "category": None,
                    "output": ["IMAGE", "MASK"], "output_tooltips": ["the image", None],
                    "output_name": None, "deprecated": None}

    class NoTooltips(V3Like):
        @classmethod
        def GET_NODE_INFO_V1(cls):
            return {"output": ["IMAGE"], "output_tooltips": None}

    registry.add("V3Like", V3Like)
    registry.add("NoTooltips", NoTooltips)
    snap = Catalogue(registry, config).snapshot_sync()
    info = json.loads(snap.node_body("V3Like"))["V3Like"]
    assert info["display_name"] == "V3Like"
    assert (info["description"], info["category"]) == ("", "sd")
    assert info["output_tooltips"] == ["the image", ""]
    assert (info["output_name"], info["deprecated"]) == ([], False)
    assert "output_tooltips" not in json.loads(snap.node_body("NoTooltips"))["NoTooltips"]


def test_large_catalogues_are_also_kept_compressed(setup):
    import gzip

    from opencomfy.catalogue import GZIP_MIN_BYTES

    registry, config, _ = setup
    small = Catalogue(registry, config).snapshot_sync()
    assert small.gzip_body is None
    for i in range(GZIP_MIN_BYTES // 100):
        registry.add(f"Node{i}", CountingNode)
    big = Catalogue(registry, config).snapshot_sync()
    assert gzip.decompress(big.gzip_body) == big.body
    assert big.gzip_etag != big.etag
