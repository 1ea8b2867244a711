"""3D values of the core nodes: MESH and VOXEL, surface extraction, and the binary glTF writer.

ComfyUI passes a ``MESH`` (``vertices [B, N, 3]`` float, ``faces [B, M, 3]`` integer indices)
and a ``VOXEL`` (``data [B, D, H, W]`` occupancy values) between its 3D nodes; packs reach
them as ``comfy_extras.nodes_hunyuan3d.MESH`` / ``VOXEL``. A batch whose items have different
sizes is padded (unused vertices, degenerate faces) and keeps each item's true counts, so
that nothing is lost when it is saved.

Coordinates: voxel ``(z, y, x)`` spans the unit cube at that index; the mesh is centred on
the grid, scaled so the longest side spans [-1, 1], and given as ``(x, y, z)``.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence

import numpy as np
import torch

GLB_MAGIC = b"glTF"
CHUNK_JSON = 0x4E4F534A  # "JSON", little-endian
CHUNK_BIN = 0x004E4942   # "BIN\0", little-endian
_FLOAT = 5126
_UNSIGNED_INT = 5125
_ARRAY_BUFFER = 34962
_ELEMENT_ARRAY_BUFFER = 34963
_TRIANGLES = 4


class VOXEL:
    """A batch of voxel grids: ``data`` is ``[B, D, H, W]``."""

    def __init__(self, data):
        self.data = data


class MESH:
    """A batch of triangle meshes: ``vertices [B, N, 3]``, ``faces [B, M, 3]``.

    ``vertex_counts`` / ``face_counts`` (optional) give each item's real size when the
    batch was padded to stack items of different sizes.
    """

    def __init__(self, vertices, faces, vertex_counts: Sequence[int] | None = None,
                 face_counts: Sequence[int] | None = None):
        self.vertices = vertices
        self.faces = faces
        self.vertex_counts = list(vertex_counts) if vertex_counts is not None else None
        self.face_counts = list(face_counts) if face_counts is not None else None

    def items(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Each mesh of the batch as (vertices [N, 3], faces [M, 3]), padding removed."""
        vertices, faces = self.vertices, self.faces
        if isinstance(vertices, torch.Tensor) and vertices.ndim == 2:
            vertices = vertices.unsqueeze(0)
        if isinstance(faces, torch.Tensor) and faces.ndim == 2:
            faces = faces.unsqueeze(0)
        if len(vertices) != len(faces):
            raise ValueError(f"MESH holds {len(vertices)} vertex sets but {len(faces)} face sets")
        out = []
        for i, (v, f) in enumerate(zip(vertices, faces, strict=True)):
            if self.vertex_counts is not None:
                v = v[: self.vertex_counts[i]]
            if self.face_counts is not None:
                f = f[: self.face_counts[i]]
            out.append((v, f))
        return out


def stack_meshes(meshes: list[tuple[torch.Tensor, torch.Tensor]]) -> MESH:
    """One MESH from per-item (vertices, faces); items of different sizes are padded."""
    vertex_counts = [int(v.shape[0]) for v, _ in meshes]
    face_counts = [int(f.shape[0]) for _, f in meshes]
    if len(set(vertex_counts)) <= 1 and len(set(face_counts)) <= 1:
        return MESH(torch.stack([v for v, _ in meshes]), torch.stack([f for _, f in meshes]))
    n, m = max(vertex_counts), max(face_counts)
    vertices = torch.zeros((len(meshes), n, 3), dtype=torch.float32)
    # Padding faces point at vertex 0 three times: zero area, so a renderer draws nothing.
    faces = torch.zeros((len(meshes), m, 3), dtype=torch.long)
    for i, (v, f) in enumerate(meshes):
        vertices[i, : v.shape[0]] = v
        faces[i, : f.shape[0]] = f
    return MESH(vertices, faces, vertex_counts, face_counts)


# --- voxels to meshes ------------------------------------------------------------------------

def _normalise(points: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """Index-space (z, y, x) corner coordinates -> centred, [-1, 1] on the longest side, xyz."""
    half = max(shape) / 2
    points = points.float() - half
    if half > 0:
        points = points / half
    return points.flip(-1)


def _flip_winding(faces: torch.Tensor) -> torch.Tensor:
    """Reverse each triangle: reordering the axes (zyx -> xyz) mirrors the mesh."""
    return faces[:, [0, 2, 1]]


# The four corners of the face of a unit cube that looks along +axis / -axis, counter-clockwise
# seen from outside in (z, y, x) index space.
def _cube_face_corners(axis: int, positive: bool) -> torch.Tensor:
    u, v = (axis + 1) % 3, (axis + 2) % 3
    corners = []
    for du, dv in ((0, 0), (1, 0), (1, 1), (0, 1)):
        c = [0, 0, 0]
        c[axis] = 1 if positive else 0
        c[u], c[v] = du, dv
        corners.append(c)
    if not positive:
        corners = [corners[0], corners[3], corners[2], corners[1]]
    return torch.tensor(corners, dtype=torch.long)


def voxel_to_mesh_basic(grid: torch.Tensor, threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The outer faces of every voxel above ``threshold``: a blocky but exact surface."""
    grid = grid.detach().cpu().float()
    if grid.ndim != 3:
        raise ValueError(f"a voxel grid must be [D, H, W], got shape {tuple(grid.shape)}")
    solid = grid > threshold
    padded = torch.nn.functional.pad(solid, (1, 1, 1, 1, 1, 1), value=False)
    cells = torch.nonzero(solid)  # (K, 3) z, y, x
    vertices, faces, count = [], [], 0
    for axis in range(3):
        for positive in (True, False):
            step = torch.zeros(3, dtype=torch.long)
            step[axis] = 1 if positive else -1
            neighbour = cells + step + 1
            exposed = cells[~padded[neighbour[:, 0], neighbour[:, 1], neighbour[:, 2]]]
            if exposed.shape[0] == 0:
                continue
            quads = exposed[:, None, :] + _cube_face_corners(axis, positive)[None]
            vertices.append(quads.reshape(-1, 3))
            base = torch.arange(count, count + 4 * exposed.shape[0]).reshape(-1, 4)
            faces.append(torch.cat([base[:, [0, 1, 2]], base[:, [0, 2, 3]]]))
            count += 4 * exposed.shape[0]
    if not vertices:
        return torch.zeros((0, 3)), torch.zeros((0, 3), dtype=torch.long)
    return _normalise(torch.cat(vertices), grid.shape), _flip_winding(torch.cat(faces))


# The 8 corners of a cell and its 12 edges (pairs of corner numbers).
_CORNERS = torch.tensor([[a, b, c] for a in (0, 1) for b in (0, 1) for c in (0, 1)])
_EDGES = [(i, j) for i in range(8) for j in range(i + 1, 8)
          if int((_CORNERS[i] - _CORNERS[j]).abs().sum()) == 1]


def voxel_to_mesh_surface_net(grid: torch.Tensor, threshold: float
                              ) -> tuple[torch.Tensor, torch.Tensor]:
    """A smooth closed surface at ``threshold`` (naive surface nets).

    Each value is a sample at its voxel's centre. Every cell between 8 samples that straddles
    the threshold gets one vertex, the mean of the points where its edges cross it; every
    sample edge that crosses it joins the four cells around that edge with a quad.
    """
    grid = grid.detach().cpu().float()
    if grid.ndim != 3:
        raise ValueError(f"a voxel grid must be [D, H, W], got shape {tuple(grid.shape)}")
    # A border safely below the threshold closes the surface at the grid's edge.
    outside = min(float(grid.min()) if grid.numel() else threshold, threshold) - 1.0
    samples = torch.nn.functional.pad(grid, (1, 1, 1, 1, 1, 1), value=outside)
    inside = samples > threshold
    size = samples.shape
    cell_shape = tuple(s - 1 for s in size)

    corner_inside = torch.stack([inside[a:a + cell_shape[0], b:b + cell_shape[1], c:c + cell_shape[2]]
                                 for a, b, c in _CORNERS.tolist()], dim=-1)
    count_inside = corner_inside.sum(-1)
    active = (count_inside > 0) & (count_inside < 8)
    cells = torch.nonzero(active)  # (K, 3), sorted in flat order
    if cells.shape[0] == 0:
        return torch.zeros((0, 3)), torch.zeros((0, 3), dtype=torch.long)

    corner_at = cells[:, None, :] + _CORNERS[None]
    values = samples[corner_at[..., 0], corner_at[..., 1], corner_at[..., 2]]  # (K, 8)
    signs = values > threshold
    total = torch.zeros((cells.shape[0], 3))
    hits = torch.zeros((cells.shape[0], 1))
    for i, j in _EDGES:
        crossing = signs[:, i] != signs[:, j]
        v1, v2 = values[:, i], values[:, j]
        t = ((threshold - v1) / (v2 - v1).where(crossing, torch.ones_like(v1))).clamp(0, 1)
        point = _CORNERS[i].float() + t[:, None] * (_CORNERS[j] - _CORNERS[i]).float()
        total += point * crossing[:, None]
        hits += crossing[:, None]
    # Sample (a, b, c) of the padded grid sits at the centre of voxel (a-1, b-1, c-1).
    vertices = cells.float() + total / hits.clamp(min=1) - 0.5

    flat_ids = (cells[:, 0] * cell_shape[1] + cells[:, 1]) * cell_shape[2] + cells[:, 2]
    faces = []
    for axis in range(3):
        u, v = (axis + 1) % 3, (axis + 2) % 3
        step = [0, 0, 0]
        step[axis] = 1
        upper = inside[step[0]:, step[1]:, step[2]:]
        lower = inside[: size[0] - step[0], : size[1] - step[1], : size[2] - step[2]]
        edges = torch.nonzero(lower != upper)  # sample s, edge s -> s + e_axis
        if edges.shape[0] == 0:
            continue
        lower_inside = lower[edges[:, 0], edges[:, 1], edges[:, 2]]
        eu = torch.zeros(3, dtype=torch.long)
        eu[u] = 1
        ev = torch.zeros(3, dtype=torch.long)
        ev[v] = 1
        # Counter-clockwise around +axis in the (u, v) plane.
        ring = torch.stack([edges - eu - ev, edges - ev, edges, edges - eu], dim=1)
        ids = (ring[..., 0] * cell_shape[1] + ring[..., 1]) * cell_shape[2] + ring[..., 2]
        quad = torch.searchsorted(flat_ids, ids)
        # The surface faces away from the inside sample: reverse the quads whose inside is +axis.
        quad = torch.where(lower_inside[:, None], quad, quad.flip(-1))
        faces.append(torch.cat([quad[:, [0, 1, 2]], quad[:, [0, 2, 3]]]))
    return _normalise(vertices, grid.shape), _flip_winding(torch.cat(faces))


# --- binary glTF ---------------------------------------------------------------------------

def _pad4(data: bytes, filler: bytes) -> bytes:
    return data + filler * ((4 - len(data) % 4) % 4)


def glb_bytes(vertices: torch.Tensor, faces: torch.Tensor, metadata: dict | None = None) -> bytes:
    """A binary glTF 2.0 file holding one triangle mesh (positions and indices).

    The container is a 12-byte header (magic, version 2, total length), a JSON chunk padded
    with spaces and a BIN chunk padded with zeros, each chunk 4-byte aligned. ``metadata``
    goes to ``asset.extras``. A mesh without faces gives a valid file with an empty scene.
    """
    positions = np.ascontiguousarray(vertices.detach().cpu().numpy(), dtype="<f4").reshape(-1, 3)
    indices = np.ascontiguousarray(faces.detach().cpu().numpy(), dtype="<u4").reshape(-1)
    gltf: dict = {"asset": {"version": "2.0", "generator": "opencomfy"}, "scene": 0}
    if metadata:
        gltf["asset"]["extras"] = metadata
    binary = b""
    if positions.shape[0] and indices.size:
        position_bytes = _pad4(positions.tobytes(), b"\x00")
        index_bytes = indices.tobytes()
        binary = position_bytes + _pad4(index_bytes, b"\x00")
        gltf.update(
            buffers=[{"byteLength": len(binary)}],
            bufferViews=[
                {"buffer": 0, "byteOffset": 0, "byteLength": positions.nbytes,
                 "target": _ARRAY_BUFFER},
                {"buffer": 0, "byteOffset": len(position_bytes), "byteLength": len(index_bytes),
                 "target": _ELEMENT_ARRAY_BUFFER},
            ],
            accessors=[
                {"bufferView": 0, "componentType": _FLOAT, "count": int(positions.shape[0]),
                 "type": "VEC3", "min": positions.min(axis=0).tolist(),
                 "max": positions.max(axis=0).tolist()},
                {"bufferView": 1, "componentType": _UNSIGNED_INT, "count": int(indices.size),
                 "type": "SCALAR"},
            ],
            meshes=[{"primitives": [{"attributes": {"POSITION": 0}, "indices": 1,
                                     "mode": _TRIANGLES}]}],
            nodes=[{"mesh": 0}],
            scenes=[{"nodes": [0]}],
        )
    else:
        gltf["scenes"] = [{"nodes": []}]
    json_chunk = _pad4(json.dumps(gltf, separators=(",", ":")).encode("utf-8"), b" ")
    chunks = struct.pack("<II", len(json_chunk), CHUNK_JSON) + json_chunk
    if binary:
        chunks += struct.pack("<II", len(binary), CHUNK_BIN) + binary
    return struct.pack("<4sII", GLB_MAGIC, 2, 12 + len(chunks)) + chunks


def checked_mesh_item(vertices, faces, index: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One mesh of a batch, checked: finite ``[N, 3]`` vertices, ``[M, 3]`` faces in range."""
    where = f"mesh {index} of the batch"
    if not isinstance(vertices, torch.Tensor) or not isinstance(faces, torch.Tensor):
        raise ValueError(f"{where}: vertices and faces must be tensors")
    if vertices.ndim != 2 or vertices.shape[-1] != 3:
        raise ValueError(f"{where}: vertices must be [N, 3], got {tuple(vertices.shape)}")
    if faces.ndim != 2 or faces.shape[-1] != 3:
        raise ValueError(f"{where}: faces must be [M, 3] triangles, got {tuple(faces.shape)}")
    if vertices.is_floating_point() and not torch.isfinite(vertices).all():
        raise ValueError(f"{where}: vertices hold NaN or infinite coordinates")
    if faces.is_floating_point():
        if not torch.equal(faces, faces.round()):
            raise ValueError(f"{where}: face indices must be whole numbers")
        faces = faces.long()
    if faces.numel() and (int(faces.min()) < 0 or int(faces.max()) >= vertices.shape[0]):
        raise ValueError(f"{where}: face indices must lie in 0..{vertices.shape[0] - 1}")
    return vertices.float(), faces
