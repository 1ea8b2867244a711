"""WanCameraEmbedding (ComfyUI's ``comfy_extras.nodes_camera_trajectory``): a preset camera
move as per-pixel Plücker ray embeddings, the camera input of the Wan Fun camera models.

For each frame the camera pose is a rotation and a translation growing linearly with the frame
index; every pixel's viewing ray ``d`` (through the pixel centre, from the intrinsics) and the
camera centre ``o`` give the six numbers ``(o x d, d)``. The frames are then packed four to a
latent frame (the first frame four times), as Wan's VAE packs pixels: the result is
``[1, 24, (length + 3) / 4, height, width]``.
"""

from __future__ import annotations

import math

import torch

from opencomfy.nodes.family_common import MAX_RESOLUTION
from opencomfy.nodes.v3_dynamic import V3DynamicNode, combo

# Unit rotation (radians, about x, y, z) and translation of each preset over the whole clip;
# a full-speed clip turns by 60 degrees or moves 1.5 units per unit of direction.
CAMERA_PRESETS = {
    "Static": ((0.0, 0.0, 0.0), (0.0, 0.0, 0.0)),
    "Pan Up": ((0.0, 0.0, 0.0), (0.0, -1.0, 0.0)),
    "Pan Down": ((0.0, 0.0, 0.0), (0.0, 1.0, 0.0)),
    "Pan Left": ((0.0, 0.0, 0.0), (-1.0, 0.0, 0.0)),
    "Pan Right": ((0.0, 0.0, 0.0), (1.0, 0.0, 0.0)),
    "Zoom In": ((0.0, 0.0, 0.0), (0.0, 0.0, 2.0)),
    "Zoom Out": ((0.0, 0.0, 0.0), (0.0, 0.0, -2.0)),
    "Anti Clockwise (ACW)": ((0.0, 0.0, -1.0), (0.0, 0.0, 0.0)),
    "ClockWise (CW)": ((0.0, 0.0, 1.0), (0.0, 0.0, 0.0)),
}
BASE_ANGLE = math.pi / 3
BASE_TRANSLATION = 1.5
# The pose data the presets come from was shot at 1280x720: intrinsics are rescaled from it.
POSE_WIDTH, POSE_HEIGHT = 1280, 720


def _rotation(ax: float, ay: float, az: float) -> torch.Tensor:
    """``Rz @ Ry @ Rx`` for angles in radians (float64)."""
    cx, sx, cy, sy, cz, sz = math.cos(ax), math.sin(ax), math.cos(ay), math.sin(ay), math.cos(az), math.sin(az)
    rx = torch.tensor([[1, 0, 0], [0, cx, -sx], [0, sx, cx]], dtype=torch.float64)
    ry = torch.tensor([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]], dtype=torch.float64)
    rz = torch.tensor([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]], dtype=torch.float64)
    return rz @ ry @ rx


def camera_poses(preset: str, speed: float, frames: int) -> torch.Tensor:
    """Camera-to-world matrices ``[frames, 4, 4]``; frame 0 is the identity."""
    angle, move = CAMERA_PRESETS[preset]
    poses = torch.zeros(frames, 4, 4, dtype=torch.float64)
    for i in range(frames):
        progress = i / frames * speed
        poses[i, :3, :3] = _rotation(*(progress * BASE_ANGLE * a for a in angle))
        poses[i, :3, 3] = torch.tensor([progress * BASE_TRANSLATION * t for t in move])
        poses[i, 3, 3] = 1.0
    # Relative to the first camera, which is the identity here: the poses stay as they are.
    return torch.linalg.inv(poses[0]) @ poses


def plucker_rays(poses: torch.Tensor, width: int, height: int, fx: float, fy: float, cx: float,
                 cy: float) -> torch.Tensor:
    """Per-pixel ``(o x d, d)`` for each pose: ``[frames, height, width, 6]`` (float32)."""
    # Fit the pose data's field of view to this aspect ratio along the cropped axis.
    if POSE_WIDTH / POSE_HEIGHT > width / height:
        fx = height * (POSE_WIDTH / POSE_HEIGHT) * fx / width
    else:
        fy = width / (POSE_WIDTH / POSE_HEIGHT) * fy / height
    fx_px, fy_px, cx_px, cy_px = fx * width, fy * height, cx * width, cy * height
    poses = poses.float()
    rows = torch.arange(height, dtype=torch.float32) + 0.5
    cols = torch.arange(width, dtype=torch.float32) + 0.5
    ys, xs = torch.meshgrid(rows, cols, indexing="ij")
    directions = torch.stack([(xs - cx_px) / fx_px, (ys - cy_px) / fy_px, torch.ones_like(xs)], dim=-1)
    directions = directions / directions.norm(dim=-1, keepdim=True)            # [H, W, 3]
    world = torch.einsum("hwc,fdc->fhwd", directions, poses[:, :3, :3])        # rotate into the world
    origins = poses[:, None, None, :3, 3].expand_as(world)
    return torch.cat([torch.linalg.cross(origins, world, dim=-1), world], dim=-1)


def pack_frames(rays: torch.Tensor) -> torch.Tensor:
    """``[F, H, W, 6]`` (F = 4k + 1) -> ``[1, 24, k + 1, H, W]``: four frames per latent frame."""
    video = rays.permute(3, 0, 1, 2)                                            # [6, F, H, W]
    video = torch.cat([video[:, :1].repeat(1, 4, 1, 1), video[:, 1:]], dim=1)   # [6, 4(k+1), H, W]
    channels, frames, height, width = video.shape
    # Channel c of frame k within a group becomes channel 4c + k.
    video = video.view(channels, frames // 4, 4, height, width).permute(0, 2, 1, 3, 4)
    return video.reshape(channels * 4, frames // 4, height, width).unsqueeze(0)


class WanCameraEmbedding(V3DynamicNode):
    """A preset camera move as Plücker embeddings, with the size it was made for."""

    NODE_ID = "WanCameraEmbedding"
    CATEGORY = "camera"
    RELATIVE_PYTHON_MODULE = "comfy_extras.nodes_camera_trajectory"
    RETURN_TYPES = ("WAN_CAMERA_EMBEDDING", "INT", "INT", "INT")
    RETURN_NAMES = ("camera_embedding", "width", "height", "length")

    @classmethod
    def INPUT_TYPES(cls):
        def size(default, minimum, step):
            return ("INT", {"default": default, "min": minimum, "max": MAX_RESOLUTION, "step": step})

        def unit(default, step):
            return ("FLOAT", {"default": default, "min": 0, "max": 1, "step": step})

        return {"required": {"camera_pose": combo(list(CAMERA_PRESETS), default="Static"),
                             "width": size(832, 16, 16), "height": size(480, 16, 16),
                             "length": size(81, 1, 4)},
                "optional": {"speed": ("FLOAT", {"default": 1.0, "min": 0, "max": 10.0, "step": 0.1}),
                             "fx": unit(0.5, 0.000000001), "fy": unit(0.5, 0.000000001),
                             "cx": unit(0.5, 0.01), "cy": unit(0.5, 0.01)}}

    def execute(self, camera_pose, width, height, length, speed=1.0, fx=0.5, fy=0.5, cx=0.5, cy=0.5):
        if (length - 1) % 4:
            raise ValueError(f"WanCameraEmbedding: length must be 4k + 1 frames (1, 5, 9 ... 81), "
                             f"as Wan packs frames four to a latent frame; got {length}")
        if fx <= 0 or fy <= 0:
            raise ValueError("WanCameraEmbedding: the focal lengths fx and fy must be above 0")
        rays = plucker_rays(camera_poses(camera_pose, speed, length), width, height, fx, fy, cx, cy)
        return (pack_frames(rays), width, height, length)


NODES = [(WanCameraEmbedding.NODE_ID, WanCameraEmbedding, None,
          WanCameraEmbedding.RELATIVE_PYTHON_MODULE)]
