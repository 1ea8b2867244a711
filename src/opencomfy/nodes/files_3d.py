"""ComfyUI's model-free 3D nodes: Load3D / Preview3D (and their animation twins), SaveGLB and
the voxel-to-mesh nodes.

The frontend's 3D widget does the rendering: on queue it uploads the scene it shows (image,
mask, normal pass, optional line art and recording) to the temp folder and sends their
annotated names, with the camera, as the value of the ``image`` input. Load3D only loads
those files, through ``folder_paths``, so each workspace reads its own files. Preview3D
answers ``{"result": [model_file, camera_info]}``, the path the viewer loads from the output
folder; SaveGLB writes binary glTF there and answers ``{"3d": [file entries]}``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import BinaryIO

import torch

from opencomfy.compat import folder_paths
from opencomfy.compat.comfy_api.latest._video import VideoFromFile
from opencomfy.nodes.image_io import load_image_file
from opencomfy.nodes.image_saving import save_metadata_enabled, write_numbered_file
from opencomfy.nodes.mesh_3d import (
    MESH, VOXEL, checked_mesh_item, glb_bytes, stack_meshes, voxel_to_mesh_basic,
    voxel_to_mesh_surface_net,
)

LOAD_3D_MODULE = "comfy_extras.nodes_load_3d"
HUNYUAN_3D_MODULE = "comfy_extras.nodes_hunyuan3d"
MODEL_FOLDER = "3d"
MODEL_EXTENSIONS = (".gltf", ".glb", ".obj", ".fbx", ".stl")
ANIMATED_MODEL_EXTENSIONS = (".gltf", ".glb", ".fbx")
# Creases between neighbouring normals sharper than this become lines (see _lineart_from_normals).
_CREASE = 0.25


def model_files(extensions: tuple[str, ...]) -> list[str]:
    """Model files under the input folder's ``3d`` sub-folder, as ``"3d/<path>"``, sorted."""
    root = folder_paths.get_input_directory()
    top = os.path.join(root, MODEL_FOLDER)
    found = []
    for current, dirs, files in os.walk(top):
        dirs.sort()
        for name in files:
            if name.lower().endswith(extensions):
                found.append(os.path.relpath(os.path.join(current, name), root).replace(os.sep, "/"))
    return sorted(found)


def _size_inputs() -> dict:
    return {"width": ("INT", {"default": 1024, "min": 1, "max": 4096, "step": 1}),
            "height": ("INT", {"default": 1024, "min": 1, "max": 4096, "step": 1})}


def _widget_file(scene: dict, key: str) -> str:
    """The full path of one file the 3D widget uploaded (an annotated name such as
    ``"threed/scene_1.png [temp]"``), confined to its folder."""
    name = scene.get(key)
    if not isinstance(name, str) or not name:
        raise ValueError(f"The 3D view sent no '{key}' rendering: open the node in the browser "
                         "and let the model load before queueing.")
    try:
        path = folder_paths.get_annotated_filepath(name)
    except ValueError:
        raise ValueError(f"Invalid file path for the 3D view's '{key}': {name}") from None
    if not os.path.isfile(path):
        raise ValueError(f"The 3D view's '{key}' file is missing: {name}")
    return path


def _load_widget_image(scene: dict, key: str) -> tuple[torch.Tensor, torch.Tensor]:
    path = _widget_file(scene, key)
    try:
        return load_image_file(path)
    except (OSError, SyntaxError, ValueError) as exc:  # Pillow's errors for a broken file
        raise ValueError(f"The 3D view's '{key}' file is not a readable image: {exc}") from None


def _lineart_from_normals(normal: torch.Tensor) -> torch.Tensor:
    """Line art from the normal pass: white where neighbouring normals differ, else black.

    Frontends that no longer render a line-art pass send none; creases and silhouettes,
    where the surface direction jumps, are what that pass outlined.
    """
    vectors = normal * 2.0 - 1.0
    jump = torch.zeros(normal.shape[:-1])
    dy = (vectors[:, 1:] - vectors[:, :-1]).norm(dim=-1)
    dx = (vectors[:, :, 1:] - vectors[:, :, :-1]).norm(dim=-1)
    jump[:, 1:] = torch.maximum(jump[:, 1:], dy)
    jump[:, :, 1:] = torch.maximum(jump[:, :, 1:], dx)
    lines = (jump > _CREASE).float()
    return lines.unsqueeze(-1).expand(-1, -1, -1, 3).contiguous()


def _scene(image) -> dict:
    if not isinstance(image, dict):
        raise ValueError("The 3D view sent no capture of its scene: open the node in the browser "
                         "and let the model load before queueing.")
    return image


def _recording(scene: dict):
    if not scene.get("recording"):
        return None
    return VideoFromFile(_widget_file(scene, "recording"))


class Load3D:
    """A 3D model from ``input/3d`` with the views the browser rendered of it."""

    MODEL_EXTENSIONS = MODEL_EXTENSIONS
    WIDGET_TYPE = "LOAD_3D"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model_file": (model_files(cls.MODEL_EXTENSIONS), {"file_upload": True}),
            "image": (cls.WIDGET_TYPE, {}),
            **_size_inputs(),
        }}

    RETURN_TYPES = ("IMAGE", "MASK", "STRING", "IMAGE", "IMAGE", "LOAD3D_CAMERA", "VIDEO")
    RETURN_NAMES = ("image", "mask", "mesh_path", "normal", "lineart", "camera_info",
                    "recording_video")
    FUNCTION = "process"
    EXPERIMENTAL = True
    CATEGORY = "3d"
    DESCRIPTION = "Loads a 3D model from input/3d; outputs what the 3D view in the browser rendered."

    def process(self, model_file, image, **kwargs):
        scene = _scene(image)
        picture, _ = _load_widget_image(scene, "image")
        _, mask = _load_widget_image(scene, "mask")
        normal, _ = _load_widget_image(scene, "normal")
        if scene.get("lineart"):
            lineart, _ = _load_widget_image(scene, "lineart")
        else:
            lineart = _lineart_from_normals(normal)
        return (picture, mask, model_file, normal, lineart, scene.get("camera_info"),
                _recording(scene))


class Load3DAnimation(Load3D):
    """Load3D for animated models (glTF, GLB, FBX); the browser plays the animation."""

    MODEL_EXTENSIONS = ANIMATED_MODEL_EXTENSIONS
    WIDGET_TYPE = "LOAD_3D_ANIMATION"

    RETURN_TYPES = ("IMAGE", "MASK", "STRING", "IMAGE", "LOAD3D_CAMERA", "VIDEO")
    RETURN_NAMES = ("image", "mask", "mesh_path", "normal", "camera_info", "recording_video")
    DESCRIPTION = "Loads an animated 3D model from input/3d; outputs the browser's rendering."

    def process(self, model_file, image, **kwargs):
        picture, mask, path, normal, _, camera, video = super().process(model_file, image)
        return (picture, mask, path, normal, camera, video)


def _output_relative(model_file) -> str:
    """A model path for the viewer, relative to the output folder; refuses one that leaves it."""
    if not isinstance(model_file, str) or not model_file.strip():
        raise ValueError("Preview 3D needs a model file path (relative to the output folder).")
    name = model_file.replace("\\", "/")
    parts = name.split("/")
    if name.startswith("/") or os.path.isabs(model_file) or ".." in parts or ":" in parts[0]:
        raise ValueError(f"Invalid model file path (must stay inside the output folder): {model_file}")
    return name


class Preview3D:
    """Shows a model of the output folder in the node's 3D view."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model_file": ("STRING", {"default": "", "multiline": False})},
                "optional": {"camera_info": ("LOAD3D_CAMERA", {})}}

    RETURN_TYPES = ()
    FUNCTION = "process"
    OUTPUT_NODE = True
    EXPERIMENTAL = True
    CATEGORY = "3d"

    def process(self, model_file, camera_info=None, **kwargs):
        return {"ui": {"result": [_output_relative(model_file), camera_info]}}


class Preview3DAnimation(Preview3D):
    """Preview3D for animated models."""


def _glb_metadata(prompt, extra_pnginfo) -> dict | None:
    """``prompt`` and the ``extra_pnginfo`` keys as JSON strings, as the PNG savers write them."""
    if not save_metadata_enabled():
        return None
    metadata = {}
    if prompt is not None:
        metadata["prompt"] = json.dumps(prompt)
    for key, value in (extra_pnginfo or {}).items():
        metadata[key] = json.dumps(value)
    return metadata or None


def _writer(data: bytes) -> Callable[[BinaryIO], None]:
    def write(handle: BinaryIO) -> None:
        handle.write(data)
    return write


class SaveGLB:
    """Writes each mesh of a MESH batch as a binary glTF (.glb) file in the output folder."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"mesh": ("MESH",),
                             "filename_prefix": ("STRING", {"default": "mesh/ComfyUI"})},
                "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"}}

    RETURN_TYPES = ()
    FUNCTION = "save"
    OUTPUT_NODE = True
    CATEGORY = "3d"

    def save(self, mesh, filename_prefix, prompt=None, extra_pnginfo=None):
        if isinstance(mesh, MESH):
            items = mesh.items()
        elif hasattr(mesh, "vertices") and hasattr(mesh, "faces"):  # a pack's own MESH class
            items = MESH(mesh.vertices, mesh.faces).items()
        else:
            raise ValueError(f"SaveGLB needs a MESH, got {type(mesh).__name__}")
        checked = [checked_mesh_item(v, f, i) for i, (v, f) in enumerate(items)]
        target = folder_paths.resolve_save_target(filename_prefix, folder_paths.get_output_directory())
        metadata = _glb_metadata(prompt, extra_pnginfo)
        results = []
        for vertices, faces in checked:
            data = glb_bytes(vertices, faces, metadata)
            name = write_numbered_file(target, stem=target.filename, extension="glb",
                                       write=_writer(data))
            results.append({"filename": name, "subfolder": target.subfolder, "type": "output"})
        return {"ui": {"3d": results}}


def _voxel_grids(voxel) -> torch.Tensor:
    data = getattr(voxel, "data", voxel)
    if not isinstance(data, torch.Tensor):
        raise ValueError(f"a VOXEL holds a tensor, got {type(data).__name__}")
    if data.ndim == 3:
        data = data.unsqueeze(0)
    if data.ndim != 4:
        raise ValueError(f"VOXEL data must be [B, D, H, W], got shape {tuple(data.shape)}")
    return data


class VoxelToMeshBasic:
    """The blocky surface of the voxels above the threshold (each exposed cube face)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "voxel": ("VOXEL",),
            "threshold": ("FLOAT", {"default": 0.6, "min": -1.0, "max": 1.0, "step": 0.01}),
        }}

    RETURN_TYPES = ("MESH",)
    FUNCTION = "decode"
    CATEGORY = "3d"

    def decode(self, voxel, threshold):
        return (stack_meshes([voxel_to_mesh_basic(g, threshold) for g in _voxel_grids(voxel)]),)


class VoxelToMesh:
    """A surface of the voxels at the threshold: smooth ("surface net") or blocky ("basic")."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "voxel": ("VOXEL",),
            "algorithm": (["surface net", "basic"],),
            "threshold": ("FLOAT", {"default": 0.6, "min": -1.0, "max": 1.0, "step": 0.01}),
        }}

    RETURN_TYPES = ("MESH",)
    FUNCTION = "decode"
    CATEGORY = "3d"

    def decode(self, voxel, algorithm, threshold):
        if algorithm == "basic":
            extract = voxel_to_mesh_basic
        elif algorithm == "surface net":
            extract = voxel_to_mesh_surface_net
        else:
            raise ValueError(f"Unknown algorithm: {algorithm}")
        return (stack_meshes([extract(g, threshold) for g in _voxel_grids(voxel)]),)


#: Module-level names packs import from ``comfy_extras.nodes_hunyuan3d`` beside the nodes.
HUNYUAN_3D_HELPERS = {"MESH": MESH, "VOXEL": VOXEL}

NODES = [
    ("Load3D", Load3D, "Load 3D", LOAD_3D_MODULE),
    ("Load3DAnimation", Load3DAnimation, "Load 3D - Animation", LOAD_3D_MODULE),
    ("Preview3D", Preview3D, "Preview 3D", LOAD_3D_MODULE),
    ("Preview3DAnimation", Preview3DAnimation, "Preview 3D - Animation", LOAD_3D_MODULE),
    ("SaveGLB", SaveGLB, "SaveGLB", HUNYUAN_3D_MODULE),
    ("VoxelToMesh", VoxelToMesh, "VoxelToMesh", HUNYUAN_3D_MODULE),
    ("VoxelToMeshBasic", VoxelToMeshBasic, "VoxelToMeshBasic", HUNYUAN_3D_MODULE),
]
