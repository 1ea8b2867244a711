"""The 3D, webcam, image-set and bounding-box nodes in graphs behind one running server: the browser's
uploads go through /upload/image, results come back in history and as files.

A small test pack supplies what no model-free core node makes: a VOXEL (a sphere, built with
``comfy_extras.nodes_hunyuan3d.VOXEL`` as a pack would) and a stand-in CLIP.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from tests.harness import Server, multipart
from tests.nodes.glb_reader import read_glb

TEST_PACK = '''
import torch
from comfy_extras.nodes_hunyuan3d import VOXEL


class TestSphereVoxel:
    CATEGORY = "testing"
    RETURN_TYPES = ("VOXEL",)
    FUNCTION = "make"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"size": ("INT", {"default": 10, "min": 2, "max": 64})}}

    def make(self, size):
        axis = torch.arange(size) + 0.5
        z, y, x = torch.meshgrid(axis, axis, axis, indexing="ij")
        r = ((z - size / 2) ** 2 + (y - size / 2) ** 2 + (x - size / 2) ** 2).sqrt()
        return (VOXEL((1 - r / (size / 3)).unsqueeze(0)),)


class LengthClip:
    def tokenize(self, text):
        return text

    def encode_from_tokens_scheduled(self, tokens):
        return [[torch.full((1, 1, 1), float(len(tokens))), {}]]


class TestLengthClip:
    CATEGORY = "testing"
    RETURN_TYPES = ("CLIP",)
    FUNCTION = "make"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}}

    def make(self):
        return (LengthClip(),)


NODE_CLASS_MAPPINGS = {"TestSphereVoxel": TestSphereVoxel, "TestLengthClip": TestLengthClip}
'''


def _png_bytes(pixels) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.array(pixels, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("files-3d")
    pack = base / "custom_nodes" / "files_3d_test_pack"
    pack.mkdir(parents=True)
    (pack / "__init__.py").write_text(TEST_PACK)
    (base / "input" / "3d").mkdir(parents=True)
    (base / "input" / "3d" / "robot.glb").write_bytes(b"glTF placeholder")
    faces = base / "input" / "faces"
    faces.mkdir()
    Image.new("RGB", (4, 2), (255, 0, 0)).save(faces / "a.png")
    Image.new("RGB", (2, 2), (0, 255, 0)).save(faces / "b.png")
    (faces / "b.txt").write_text("green")
    srv = Server(base_dir=base).start()
    yield srv
    srv.stop()


def _upload(server, name: str, content: bytes, subfolder: str) -> str:
    """Upload as the browser's widgets do (to temp); the annotated name they then send."""
    body, content_type = multipart({"type": "temp", "subfolder": subfolder, "overwrite": "true"},
                                   {"image": (name, content)})
    r = server.request("POST", "/api/upload/image", data=body, headers={"Content-Type": content_type})
    assert r.status == 200, r.body
    return f"{subfolder}/{r.json()['name']} [temp]"


def _run(server, prompt: dict) -> dict:
    response = server.post("/prompt", {"prompt": prompt})
    assert response.status == 200, response.body
    return server.wait_for_job(response.json()["prompt_id"])


def test_voxels_to_saved_glb_and_load3d_over_the_uploaded_scene(server):
    scene_pixels = [[[255, 0, 0], [0, 255, 0]], [[0, 0, 255], [255, 255, 255]]]
    camera = {"position": {"x": 1, "y": 2, "z": 3}, "target": {"x": 0, "y": 0, "z": 0},
              "zoom": 1, "cameraType": "perspective"}
    widget = {
        "image": _upload(server, "scene.png", _png_bytes(scene_pixels), "threed"),
        "mask": _upload(server, "scene_mask.png",
                        _png_bytes([[[0, 0, 0, 255], [0, 0, 0, 0]]] * 2), "threed"),
        "normal": _upload(server, "scene_normal.png",
                          _png_bytes([[[128, 128, 255], [255, 128, 128]]] * 2), "threed"),
        "camera_info": camera, "recording": "",
    }
    entry = _run(server, {
        "1": {"class_type": "TestSphereVoxel", "inputs": {"size": 10}},
        "2": {"class_type": "VoxelToMesh", "inputs": {"voxel": ["1", 0], "algorithm": "surface net",
                                                      "threshold": 0.0}},
        "3": {"class_type": "SaveGLB", "inputs": {"mesh": ["2", 0], "filename_prefix": "mesh/ball"}},
        "4": {"class_type": "VoxelToMeshBasic", "inputs": {"voxel": ["1", 0], "threshold": 0.0}},
        "5": {"class_type": "SaveGLB", "inputs": {"mesh": ["4", 0], "filename_prefix": "mesh/blocks"}},
        "6": {"class_type": "Load3D", "inputs": {"model_file": "3d/robot.glb", "image": widget,
                                                 "width": 2, "height": 2}},
        "7": {"class_type": "Preview3D", "inputs": {"model_file": ["6", 2], "camera_info": ["6", 5]}},
        "8": {"class_type": "PreviewImage", "inputs": {"images": ["6", 0]}},
        "9": {"class_type": "Load3DAnimation", "inputs": {"model_file": "3d/robot.glb",
                                                          "image": widget, "width": 2, "height": 2}},
        "10": {"class_type": "Preview3DAnimation", "inputs": {"model_file": ["9", 2]}},
    })
    assert entry["status"]["status_str"] == "success", entry["status"]
    outputs = entry["outputs"]
    for node, prefix in (("3", "ball_"), ("5", "blocks_")):
        (saved,) = outputs[node]["3d"]
        assert saved["subfolder"] == "mesh" and saved["type"] == "output"
        assert saved["filename"].startswith(prefix) and saved["filename"].endswith("_.glb")
        view = server.get(f"/view?filename={saved['filename']}&subfolder=mesh&type=output")
        assert view.status == 200
        document, [(positions, faces)] = read_glb(view.body)
        assert len(faces) > 20 and positions.min() >= -1 and positions.max() <= 1
        assert '"SaveGLB"' in document["asset"]["extras"]["prompt"]
    assert outputs["7"]["result"] == ["3d/robot.glb", camera]
    assert outputs["10"]["result"] == ["3d/robot.glb", None]
    (preview,) = outputs["8"]["images"]
    shown = server.get(f"/view?filename={preview['filename']}&type=temp")
    assert np.array(Image.open(io.BytesIO(shown.body))).tolist() == scene_pixels


def test_webcam_still_and_image_sets_in_one_graph(server):
    still = _upload(server, "shot.png", _png_bytes(np.full((3, 5, 3), 200)), "webcam")
    entry = _run(server, {
        "1": {"class_type": "WebcamCapture", "inputs": {"image": still, "width": 5, "height": 3,
                                                        "capture_on_queue": True}},
        "2": {"class_type": "GetImageSize", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "PreviewAny", "inputs": {"source": ["2", 0]}},
        "4": {"class_type": "LoadImageSetFromFolderNode", "inputs": {"folder": "faces",
                                                                     "resize_method": "Stretch"}},
        "5": {"class_type": "GetImageSize", "inputs": {"image": ["4", 0]}},
        "6": {"class_type": "PreviewAny", "inputs": {"source": ["5", 2]}},
        "7": {"class_type": "TestLengthClip", "inputs": {}},
        "8": {"class_type": "LoadImageTextSetFromFolderNode", "inputs": {
            "folder": "faces", "clip": ["7", 0], "resize_method": "Pad", "width": 6, "height": 4}},
        "9": {"class_type": "GetImageSize", "inputs": {"image": ["8", 0]}},
        "10": {"class_type": "PreviewAny", "inputs": {"source": ["9", 0]}},
        "11": {"class_type": "PreviewAny", "inputs": {"source": ["8", 1]}},
    })
    assert entry["status"]["status_str"] == "success", entry["status"]
    outputs = entry["outputs"]
    assert outputs["3"]["text"] == ["5"]      # the webcam still's width
    assert outputs["6"]["text"] == ["2"]      # both images of the folder
    assert outputs["10"]["text"] == ["6"]     # fitted to the asked width
    captions = outputs["11"]["text"][0]       # a.png has no caption (0), b.png "green" (5)
    assert "tensor([[[0.]]])" in captions and "tensor([[[5.]]])" in captions


def test_a_path_leaving_the_output_folder_is_a_node_error(server):
    entry = _run(server, {"1": {"class_type": "Preview3D", "inputs": {"model_file": "../x.glb"}}})
    assert entry["status"]["status_str"] == "error"
    error = dict(entry["status"]["messages"])["execution_error"]
    assert error["node_type"] == "Preview3D"
    assert "must stay inside the output folder" in error["exception_message"]
    response = server.post("/prompt", {"prompt": {
        "1": {"class_type": "Load3D", "inputs": {"model_file": "../x.glb", "image": {},
                                                 "width": 2, "height": 2}},
        "2": {"class_type": "Preview3D", "inputs": {"model_file": ["1", 2]}}}})
    assert response.status == 400  # not one of input/3d's models
    assert response.json()["node_errors"]["1"]["errors"][0]["type"] == "value_not_in_list"


def test_bounding_boxes_from_the_canvas_widget(server):
    canvas = [{"x": 64, "y": 0, "width": 128, "height": 64,
               "metadata": {"type": "text", "text": "HI", "desc": "title", "palette": ["#ff0000"]}}]
    entry = _run(server, {
        "1": {"class_type": "CreateBoundingBoxes", "inputs": {
            # The frontend wraps list widget values so they are not read as links.
            "width": 256, "height": 128, "editor_state": {"__value__": canvas},
            "last_incoming": {"__value__": []}}},
        "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 2]}},
        "3": {"class_type": "GetImageSize", "inputs": {"image": ["1", 0]}},
        "4": {"class_type": "PreviewAny", "inputs": {"source": ["3", 0]}},
    })
    assert entry["status"]["status_str"] == "success", entry["status"]
    outputs = entry["outputs"]
    assert outputs["1"] == {"dims": [256, 128]}
    assert json.loads(outputs["2"]["text"][0]) == [
        {"type": "text", "bbox": [0, 250, 500, 750], "text": "HI", "desc": "title",
         "color_palette": ["#ff0000"]}]
    assert outputs["4"]["text"] == ["256"]
