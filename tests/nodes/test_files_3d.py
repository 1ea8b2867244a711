"""The 3D nodes called directly: GLB files read back with an independent reader, surfaces of
voxel grids (closed, facing out, where the shape is), Load3D over the widget's uploads,
Preview3D's ui, and bad input (broken files, paths leaving their folder, malformed meshes)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from opencomfy.compat import folder_paths
from opencomfy.compat.comfy import cli_args
from opencomfy.compat.comfy_api.latest._video import VideoFromFile
from opencomfy.nodes.files_3d import (
    Load3D, Load3DAnimation, Preview3D, Preview3DAnimation, SaveGLB, VoxelToMesh, VoxelToMeshBasic,
)
from opencomfy.nodes.mesh_3d import MESH, VOXEL, glb_bytes
from tests.nodes import media
from tests.nodes.conftest import run_node
from tests.nodes.glb_reader import read_glb


@pytest.fixture(autouse=True)
def _leave_the_input_folder_as_found():
    """The folder nodes list the input folder's sub-folders; point it back where it was, so
    that later tests (the catalogue against ComfyUI's) do not see this test's folders."""
    before = folder_paths.get_root_directory("input")
    yield
    folder_paths.set_input_directory(before)


def sphere_grid(n: int = 12, centre=(6.0, 6.0, 4.0), radius: float = 4.0) -> torch.Tensor:
    """Values 1 at the centre falling to 0 at ``radius`` (voxel centres, (z, y, x) order)."""
    z, y, x = torch.meshgrid(*[torch.arange(n) + 0.5] * 3, indexing="ij")
    r = ((z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2).sqrt()
    return (1 - r / radius).clamp(min=-1)


def signed_volume(vertices: torch.Tensor, faces: torch.Tensor) -> float:
    tri = vertices[faces]
    return float((tri[:, 0] * torch.linalg.cross(tri[:, 1], tri[:, 2])).sum() / 6)


# --- GLB ----------------------------------------------------------------------------------

def test_glb_round_trips_vertices_and_faces():
    vertices = torch.tensor([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1.5]])
    faces = torch.tensor([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
    document, [(positions, indices)] = read_glb(glb_bytes(vertices, faces, {"prompt": "{}"}))
    assert np.array_equal(positions, vertices.numpy().astype(np.float32))
    assert np.array_equal(indices, faces.numpy())
    assert document["asset"]["extras"] == {"prompt": "{}"}
    assert document["scenes"][document["scene"]]["nodes"] == [0]


def test_glb_pads_chunks_to_four_bytes():
    # 3 vertices (36 bytes) and 1 face (12 bytes); odd JSON lengths are padded with spaces.
    for extra in ("", "x", "xy", "xyz"):
        data = glb_bytes(torch.rand(3, 3), torch.tensor([[0, 1, 2]]), {"k": extra})
        assert len(data) % 4 == 0
        read_glb(data)


def test_glb_of_an_empty_mesh_is_a_valid_empty_scene():
    document, meshes = read_glb(glb_bytes(torch.zeros(0, 3), torch.zeros(0, 3, dtype=torch.long)))
    assert meshes == [] and document["scenes"] == [{"nodes": []}]


# --- SaveGLB ------------------------------------------------------------------------------

def test_save_glb_writes_numbered_files_with_metadata(comfy_dirs):
    vertices = torch.rand(2, 4, 3)
    faces = torch.tensor([[[0, 1, 2], [0, 2, 3]]] * 2)
    prompt = {"1": {"class_type": "SaveGLB"}}
    out = run_node(SaveGLB, mesh=MESH(vertices, faces), filename_prefix="mesh/ComfyUI",
                   prompt=prompt, extra_pnginfo={"workflow": {"nodes": []}})
    assert out == {"ui": {"3d": [
        {"filename": "ComfyUI_00001_.glb", "subfolder": "mesh", "type": "output"},
        {"filename": "ComfyUI_00002_.glb", "subfolder": "mesh", "type": "output"},
    ]}}
    for i, entry in enumerate(out["ui"]["3d"]):
        data = (comfy_dirs / "output" / "mesh" / entry["filename"]).read_bytes()
        document, [(positions, indices)] = read_glb(data)
        assert np.allclose(positions, vertices[i].numpy()) and np.array_equal(indices, faces[i])
        assert document["asset"]["extras"] == {"prompt": json.dumps(prompt),
                                               "workflow": json.dumps({"nodes": []})}
    again = run_node(SaveGLB, mesh=MESH(vertices[:1], faces[:1]), filename_prefix="mesh/ComfyUI")
    assert again["ui"]["3d"][0]["filename"] == "ComfyUI_00003_.glb"


def test_save_glb_leaves_metadata_out_when_disabled(comfy_dirs):
    cli_args.args.disable_metadata = True
    out = run_node(SaveGLB, mesh=MESH(torch.rand(1, 3, 3), torch.tensor([[[0, 1, 2]]])),
                   filename_prefix="plain", prompt={"1": {}})
    document, _ = read_glb((comfy_dirs / "output" / out["ui"]["3d"][0]["filename"]).read_bytes())
    assert "extras" not in document["asset"]


@pytest.mark.parametrize("vertices, faces, message", [
    (torch.rand(1, 3, 3), torch.tensor([[[0, 1, 3]]]), "face indices must lie in 0..2"),
    (torch.rand(1, 3, 3), torch.tensor([[[0, -1, 2]]]), "face indices must lie"),
    (torch.tensor([[[0, 0, 0], [1, 0, 0], [math.nan, 0, 0]]]), torch.tensor([[[0, 1, 2]]]), "NaN"),
    (torch.rand(1, 3, 2), torch.tensor([[[0, 1, 2]]]), r"vertices must be \[N, 3\]"),
    (torch.rand(1, 4, 3), torch.tensor([[[0, 1, 2, 3]]]), r"faces must be \[M, 3\]"),
    (torch.rand(2, 3, 3), torch.tensor([[[0, 1, 2]]]), "2 vertex sets but 1 face sets"),
])
def test_save_glb_refuses_a_malformed_mesh(comfy_dirs, vertices, faces, message):
    with pytest.raises(ValueError, match=message):
        run_node(SaveGLB, mesh=MESH(vertices, faces), filename_prefix="bad")
    assert not list((comfy_dirs / "output").iterdir())


def test_save_glb_refuses_a_prefix_leaving_the_output_folder(comfy_dirs):
    with pytest.raises(ValueError, match="outside the output folder"):
        run_node(SaveGLB, mesh=MESH(torch.rand(1, 3, 3), torch.tensor([[[0, 1, 2]]])),
                 filename_prefix="../x")
    with pytest.raises(ValueError, match="needs a MESH"):
        run_node(SaveGLB, mesh="not a mesh", filename_prefix="x")


# --- voxels to meshes ---------------------------------------------------------------------

@pytest.mark.parametrize("algorithm", ["surface net", "basic"])
def test_voxel_to_mesh_gives_a_closed_outward_surface_where_the_shape_is(algorithm):
    (mesh,) = run_node(VoxelToMesh, voxel=VOXEL(sphere_grid().unsqueeze(0)), algorithm=algorithm,
                       threshold=0.0)
    vertices, faces = mesh.vertices[0], mesh.faces[0]
    assert vertices.shape[-1] == 3 and faces.shape[-1] == 3 and faces.dtype == torch.long
    # Sphere of radius 4 in a grid of 12 -> radius 2/3; (x, y, z) order: its x centre is 4.
    volume = signed_volume(vertices, faces)
    assert 0.8 * (4 / 3 * math.pi * (2 / 3) ** 3) < volume < 1.2 * (4 / 3 * math.pi * (2 / 3) ** 3)
    centre = (vertices.min(0).values + vertices.max(0).values) / 2
    assert torch.allclose(centre, torch.tensor([-1 / 3, 0.0, 0.0]), atol=0.1)
    assert vertices.abs().max() <= 1.0


def test_surface_net_shares_every_edge_between_two_opposite_triangles():
    (mesh,) = run_node(VoxelToMesh, voxel=VOXEL(sphere_grid().unsqueeze(0)),
                       algorithm="surface net", threshold=0.3)
    directed: dict[tuple[int, int], int] = {}
    for a, b, c in mesh.faces[0].tolist():
        for edge in ((a, b), (b, c), (c, a)):
            directed[edge] = directed.get(edge, 0) + 1
    assert all(count == 1 and directed.get((b, a)) == 1 for (a, b), count in directed.items())


def test_surface_net_closes_a_shape_touching_the_grid_border():
    grid = torch.full((4, 4, 4), 1.0)  # solid everywhere: the border closes it
    (mesh,) = run_node(VoxelToMesh, voxel=VOXEL(grid[None]), algorithm="surface net", threshold=0.5)
    assert signed_volume(mesh.vertices[0], mesh.faces[0]) > 0


def test_basic_mesh_of_one_voxel_is_a_cube():
    grid = torch.zeros(1, 2, 2, 2)
    grid[0, 0, 0, 0] = 1
    (mesh,) = run_node(VoxelToMeshBasic, voxel=VOXEL(grid), threshold=0.5)
    assert mesh.vertices.shape == (1, 24, 3) and mesh.faces.shape == (1, 12, 3)
    assert signed_volume(mesh.vertices[0], mesh.faces[0]) == pytest.approx(1.0)  # (2/2)^3


def test_a_batch_of_different_shapes_is_padded_and_saved_unpadded(comfy_dirs):
    small = torch.zeros(4, 4, 4)
    small[1, 1, 1] = 1
    big = torch.zeros(4, 4, 4)
    big[1:3, 1:3, 1:3] = 1
    (mesh,) = run_node(VoxelToMeshBasic, voxel=VOXEL(torch.stack([small, big])), threshold=0.5)
    assert mesh.vertices.shape == (2, 96, 3) and mesh.vertex_counts == [24, 96]
    out = run_node(SaveGLB, mesh=mesh, filename_prefix="batch")
    counts = [len(read_glb((comfy_dirs / "output" / e["filename"]).read_bytes())[1][0][1])
              for e in out["ui"]["3d"]]
    assert counts == [12, 48]


def test_voxel_to_mesh_of_an_empty_grid_and_bad_voxels():
    (mesh,) = run_node(VoxelToMesh, voxel=VOXEL(torch.zeros(1, 3, 3, 3)), algorithm="surface net",
                       threshold=0.5)
    assert mesh.vertices.shape == (1, 0, 3) and mesh.faces.shape == (1, 0, 3)
    with pytest.raises(ValueError, match=r"\[B, D, H, W\]"):
        run_node(VoxelToMeshBasic, voxel=VOXEL(torch.zeros(3, 3)), threshold=0.5)
    with pytest.raises(ValueError, match="Unknown algorithm"):
        run_node(VoxelToMesh, voxel=VOXEL(torch.zeros(1, 2, 2, 2)), algorithm="dual", threshold=0.5)


# --- Load3D -------------------------------------------------------------------------------

def _png(path, rgba) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.array(rgba, dtype=np.uint8)).save(path)


@pytest.fixture
def scene(comfy_dirs):
    """The files the 3D widget uploads to temp/threed, and the value it sends for them."""
    temp = comfy_dirs / "temp" / "threed"
    _png(temp / "scene.png", [[[255, 0, 0], [0, 255, 0]], [[0, 0, 255], [255, 255, 255]]])
    _png(temp / "scene_mask.png", [[[0, 0, 0, 255], [0, 0, 0, 0]], [[0, 0, 0, 0], [0, 0, 0, 255]]])
    # Normals: left column faces +z, right column +x: a crease between them.
    _png(temp / "scene_normal.png", [[[128, 128, 255], [255, 128, 128]]] * 2)
    _png(temp / "scene_lineart.png", [[[0, 0, 0], [255, 255, 255]]] * 2)
    model = comfy_dirs / "input" / "3d" / "robot.glb"
    model.parent.mkdir()
    model.write_bytes(glb_bytes(torch.rand(3, 3), torch.tensor([[0, 1, 2]])))
    camera = {"position": {"x": 1, "y": 2, "z": 3}, "target": {"x": 0, "y": 0, "z": 0},
              "zoom": 1, "cameraType": "perspective"}
    return {"image": "threed/scene.png [temp]", "mask": "threed/scene_mask.png [temp]",
            "normal": "threed/scene_normal.png [temp]", "lineart": "threed/scene_lineart.png [temp]",
            "camera_info": camera, "recording": ""}


def test_load3d_lists_model_files_of_input_3d(comfy_dirs):
    folder = comfy_dirs / "input" / "3d"
    (folder / "sub").mkdir(parents=True)
    for name in ("a.GLB", "b.obj", "c.fbx", "d.stl", "e.gltf", "notes.txt", "sub/f.glb"):
        (folder / name).write_bytes(b"x")
    (comfy_dirs / "input" / "top.glb").write_bytes(b"x")
    files, options = Load3D.INPUT_TYPES()["required"]["model_file"]
    assert files == ["3d/a.GLB", "3d/b.obj", "3d/c.fbx", "3d/d.stl", "3d/e.gltf", "3d/sub/f.glb"]
    assert options == {"file_upload": True}
    animated = Load3DAnimation.INPUT_TYPES()["required"]["model_file"][0]
    assert animated == ["3d/a.GLB", "3d/c.fbx", "3d/e.gltf", "3d/sub/f.glb"]


def test_load3d_returns_the_uploaded_renderings(scene):
    image, mask, path, normal, lineart, camera, video = run_node(
        Load3D, model_file="3d/robot.glb", image=scene, width=2, height=2)
    assert image.shape == (1, 2, 2, 3) and image[0, 0, 0].tolist() == [1.0, 0.0, 0.0]
    assert mask.tolist() == [[[0.0, 1.0], [1.0, 0.0]]]  # 1 - alpha of the mask rendering
    assert path == "3d/robot.glb" and camera == scene["camera_info"] and video is None
    assert normal[0, 0, 0, 2] == 1.0 and lineart[0, :, :, 0].tolist() == [[0.0, 1.0], [0.0, 1.0]]

    image2, mask2, path2, normal2, camera2, video2 = run_node(
        Load3DAnimation, model_file="3d/robot.glb", image=scene, width=2, height=2)
    assert torch.equal(image2, image) and torch.equal(mask2, mask) and camera2 == camera


def test_load3d_without_a_lineart_pass_outlines_the_creases_of_the_normals(scene):
    del scene["lineart"]
    lineart = run_node(Load3D, model_file="3d/robot.glb", image=scene, width=2, height=2)[4]
    assert lineart.shape == (1, 2, 2, 3)
    assert lineart[0, :, :, 0].tolist() == [[0.0, 1.0], [0.0, 1.0]]


def test_load3d_passes_the_recording_on_as_a_video(scene, comfy_dirs):
    (comfy_dirs / "temp" / "threed" / "rec.mp4").write_bytes(media.video_bytes(media.frames(4)))
    scene["recording"] = "threed/rec.mp4 [temp]"
    video = run_node(Load3D, model_file="3d/robot.glb", image=scene, width=2, height=2)[6]
    assert isinstance(video, VideoFromFile) and video.get_frame_count() == 4


@pytest.mark.parametrize("change, message", [
    ({"image": "../../secret.png [temp]"}, "Invalid file path for the 3D view's 'image'"),
    ({"mask": "threed/missing.png [temp]"}, "'mask' file is missing"),
    ({"normal": ""}, "sent no 'normal' rendering"),
    ({"recording": "/etc/passwd"}, "Invalid file path|'recording' file is missing"),
])
def test_load3d_rejects_bad_widget_files(scene, change, message):
    with pytest.raises(ValueError, match=message):
        run_node(Load3D, model_file="3d/robot.glb", image={**scene, **change}, width=2, height=2)


def test_load3d_rejects_a_broken_rendering_and_a_missing_capture(scene, comfy_dirs):
    (comfy_dirs / "temp" / "threed" / "scene.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(ValueError, match="'image' file is not a readable image"):
        run_node(Load3D, model_file="3d/robot.glb", image=scene, width=2, height=2)
    with pytest.raises(ValueError, match="no capture of its scene"):
        run_node(Load3D, model_file="3d/robot.glb", image=None, width=2, height=2)


# --- Preview3D ----------------------------------------------------------------------------

def test_preview3d_answers_the_viewer_its_file_and_camera():
    camera = {"position": {"x": 0, "y": 0, "z": 5}}
    assert run_node(Preview3D, model_file="mesh\\ComfyUI_00001_.glb", camera_info=camera) == {
        "ui": {"result": ["mesh/ComfyUI_00001_.glb", camera]}}
    assert run_node(Preview3DAnimation, model_file="a.glb") == {"ui": {"result": ["a.glb", None]}}


@pytest.mark.parametrize("name", ["../x.glb", "/etc/passwd", "mesh/../../x.glb", "", "C:/x.glb"])
def test_preview3d_refuses_paths_leaving_the_output_folder(name):
    with pytest.raises(ValueError, match="model file"):
        run_node(Preview3D, model_file=name)
