"""The API's 106 landmarks read off MediaPipe's 468-point mesh (`edge/data/mesh106_map.json`).

Each API point is one mesh vertex or a fixed weighted mean of two to four vertices; the table
and how each group was chosen are in the JSON (`groups`), written by
`tools/mesh106_table.py`. Left/right are image left/right, as in landmarks106.md.

Which parts the product takes from the mesh instead of PFLD-106 is the evaluation's call
(`edge-face eval faces`, `edge/evaluation/landmarks106.py`): `ship_parts` in the same file
lists the parts that were no worse there; every other part stays PFLD-106.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from edge.vision.mesh import Mesh

MESH_POINTS = 468
API_POINTS = 106
MAP_PATH = Path(__file__).resolve().parent.parent / "data" / "mesh106_map.json"

# API indices of each part: the groups of landmarks106.md §3, pupils with the eyes and the
# nose-root side points (78, 79) with the nose.
PARTS: dict[str, tuple[int, ...]] = {
    "contour": tuple(range(33)),
    "brows": (*range(33, 43), *range(64, 72)),
    "eyes": (*range(52, 64), *range(72, 78), 104, 105),
    "nose": (*range(43, 52), 78, 79, 80, 81, 82, 83),
    "mouth": tuple(range(84, 104)),
}


@dataclass(frozen=True)
class Mesh106Table:
    """`weights` (106, 468): api_points = weights @ mesh_points; `ship_parts` = the parts the
    evaluation found no worse than PFLD-106."""

    weights: np.ndarray
    ship_parts: tuple[str, ...]


def _check(entries: list[list[list[float]]]) -> np.ndarray:
    """Entries -> a dense weight matrix, refusing anything but 106 convex combinations of
    valid vertices (a broken table must fail loudly, not move points silently)."""
    if len(entries) != API_POINTS:
        raise ValueError(f"mesh106_map.json has {len(entries)} points, not {API_POINTS}")
    w = np.zeros((API_POINTS, MESH_POINTS), dtype=np.float64)
    for j, entry in enumerate(entries):
        if not 1 <= len(entry) <= 4:
            raise ValueError(f"mesh106_map.json point {j}: 1 to 4 vertices, got {len(entry)}")
        for vertex, weight in entry:
            v = int(vertex)
            if v != vertex or not 0 <= v < MESH_POINTS or not 0.0 < weight <= 1.0:
                raise ValueError(f"mesh106_map.json point {j}: bad vertex/weight {entry}")
            w[j, v] += weight
        if abs(w[j].sum() - 1.0) > 1e-6:
            raise ValueError(f"mesh106_map.json point {j}: weights sum to {w[j].sum()}, not 1")
    return w


@lru_cache(maxsize=1)
def table() -> Mesh106Table:
    """The checked table from package data (read once)."""
    data = json.loads(MAP_PATH.read_text(encoding="utf-8"))
    w = _check(data["points"])
    w.setflags(write=False)
    ship = tuple(str(p) for p in data.get("ship_parts", []))
    unknown = set(ship) - set(PARTS)
    if unknown:
        raise ValueError(f"mesh106_map.json ship_parts names unknown parts {sorted(unknown)}")
    return Mesh106Table(weights=w, ship_parts=ship)


def from_points(points: np.ndarray) -> np.ndarray:
    """(106, 2) float32 API-order points from (468, >=2) mesh points (image or crop)."""
    out: np.ndarray = (table().weights @ np.asarray(points, np.float64)[:, :2]).astype(np.float32)
    return out


def points106(mesh: Mesh) -> np.ndarray:
    """The API's 106 landmarks in image coordinates from one mesh result."""
    return from_points(mesh.points)


def merge(pfld: np.ndarray, mesh: np.ndarray, parts: tuple[str, ...]) -> np.ndarray:
    """PFLD-106 points with `parts` taken from the mesh-derived ones (both API order)."""
    out = np.array(pfld, dtype=np.float32, copy=True)
    for part in parts:
        idx = list(PARTS[part])
        out[idx] = mesh[idx]
    return out
