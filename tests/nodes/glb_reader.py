"""An independent reader of binary glTF for the 3D tests: checks the container as the glTF 2.0
specification describes it and returns each mesh's positions and triangle indices."""

from __future__ import annotations

import json
import struct

import numpy as np

_COMPONENTS = {5126: "<f4", 5125: "<u4", 5123: "<u2", 5121: "u1"}
_WIDTH = {"SCALAR": 1, "VEC3": 3}


def read_glb(data: bytes) -> tuple[dict, list[tuple[np.ndarray, np.ndarray]]]:
    """(the JSON document, [(positions [N, 3], faces [M, 3]) per mesh primitive])."""
    magic, version, length = struct.unpack_from("<4sII", data, 0)
    assert magic == b"glTF" and version == 2, (magic, version)
    assert length == len(data), f"header says {length} bytes, file has {len(data)}"
    json_length, json_type = struct.unpack_from("<II", data, 12)
    assert json_type == 0x4E4F534A and json_length % 4 == 0
    document = json.loads(data[20:20 + json_length].decode("utf-8"))
    offset = 20 + json_length
    binary = b""
    if offset < len(data):
        bin_length, bin_type = struct.unpack_from("<II", data, offset)
        assert bin_type == 0x004E4942 and bin_length % 4 == 0
        binary = data[offset + 8: offset + 8 + bin_length]
        assert offset + 8 + bin_length == len(data)
        assert document["buffers"][0]["byteLength"] == bin_length
    assert document["asset"]["version"] == "2.0"

    def accessor(index: int) -> np.ndarray:
        info = document["accessors"][index]
        view = document["bufferViews"][info["bufferView"]]
        start = view.get("byteOffset", 0) + info.get("byteOffset", 0)
        width = _WIDTH[info["type"]]
        dtype = np.dtype(_COMPONENTS[info["componentType"]])
        values = np.frombuffer(binary, dtype=dtype, count=info["count"] * width, offset=start)
        assert start + values.nbytes <= view.get("byteOffset", 0) + view["byteLength"]
        return values.reshape(info["count"], width) if width > 1 else values

    meshes = []
    for mesh in document.get("meshes", []):
        for primitive in mesh["primitives"]:
            assert primitive.get("mode", 4) == 4
            positions = accessor(primitive["attributes"]["POSITION"])
            info = document["accessors"][primitive["attributes"]["POSITION"]]
            assert np.allclose(info["min"], positions.min(axis=0))
            assert np.allclose(info["max"], positions.max(axis=0))
            faces = accessor(primitive["indices"]).reshape(-1, 3)
            meshes.append((positions, faces))
    return document, meshes
