"""Write `edge/data/mesh106_map.json`: the API's 106 points as fixed mesh-vertex combinations.

Usage: python tools/mesh106_table.py [--data DIR] [--ship PART ...] [--write]

--write also writes docs/landmarks106_mesh.md, the table one row per API point.

Rules (image left/right; mirror rules on the image-right side):
* named points -> one MediaPipe vertex: eye corners and lid top/bottom, inner brow corners,
  mouth and inner-mouth corners, lip centres, Cupid's-bow peaks, nose bridge, tip, subnasale;
* points defined as "a quarter/middle of an edge" -> that arc-length fraction of the mesh
  polyline along the edge, measured on the calibration mean mesh and frozen as a two-vertex
  interpolation; eye centres/pupils -> mean of the two corners and the lid top/bottom (the
  mesh has no iris); brow outer tips -> mean of the upper and lower outer brow vertices;
* points with no anatomical mesh counterpart (nostril-base wing points, nose side walls,
  nose-root sides: landmarks106.md flag A) -> the mirror-symmetric vertex pair nearest to
  where PFLD-106 puts them on the calibration faces, i.e. the contract's present convention;
* contour 0-32 -> the jaw polyline of the mesh's face oval, at the arc-length fraction where
  PFLD-106's contour points project onto it (median over calibration faces, left and right
  averaged), frozen like the edge points.
Calibration faces: faces_by_identity, every fourth image from the fourth (the split
`edge/evaluation/mesh_pose.py` calibrates on); the evaluation uses other faces.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edge.config import load_settings, testdata_dir  # noqa: E402
from edge.engine import Models  # noqa: E402
from edge.evaluation.mesh_pose import _images, analyzer, largest  # noqa: E402
from edge.vision.mesh106 import MAP_PATH, PARTS  # noqa: E402
from edge.vision.pipeline import FacePipeline  # noqa: E402

DOC_PATH = REPO / "docs" / "landmarks106_mesh.md"
NAMES_PATH = REPO / "edge" / "data" / "landmarks106_map.json"

CALIBRATION_FACES = 80
JAW_LEFT = (162, 127, 234, 93, 132, 58, 172, 136, 150, 149, 176, 148, 152)
JAW_RIGHT = (389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152)
# (upper edge outer->inner, lower edge outer->inner) per brow
BROW_LEFT = ((70, 63, 105, 66, 107), (46, 53, 52, 65, 55))
BROW_RIGHT = ((300, 293, 334, 296, 336), (276, 283, 282, 295, 285))
# (upper lid outer->inner, lower lid outer->inner, top vertex, bottom vertex) per eye
EYE_LEFT = (
    (33, 246, 161, 160, 159, 158, 157, 173, 133),
    (33, 7, 163, 144, 145, 153, 154, 155, 133),
    159,
    145,
)
EYE_RIGHT = (
    (263, 466, 388, 387, 386, 385, 384, 398, 362),
    (263, 249, 390, 373, 374, 380, 381, 382, 362),
    386,
    374,
)
LIP_UPPER_LEFT = (61, 185, 40, 39, 37)  # corner -> bow peak
LIP_UPPER_RIGHT = (291, 409, 270, 269, 267)
LIP_LOWER_RIGHT = (291, 375, 321, 405, 314, 17)  # corner -> centre
LIP_LOWER_LEFT = (61, 146, 91, 181, 84, 17)
INNER_UPPER_LEFT = (78, 191, 80, 81, 82, 13)
INNER_UPPER_RIGHT = (308, 415, 310, 311, 312, 13)
INNER_LOWER_RIGHT = (308, 324, 318, 402, 317, 14)
INNER_LOWER_LEFT = (78, 95, 88, 178, 87, 14)
SINGLE = {43: 168, 44: 6, 45: 195, 46: 4, 49: 2, 84: 61, 86: 37, 87: 0, 88: 267, 90: 291,
          93: 17, 96: 78, 98: 13, 100: 308, 102: 14}  # fmt: skip
NEAREST_PAIRS = ((47, 51), (48, 50), (78, 79), (80, 81), (82, 83))  # (image-left, image-right)

Entry = list[list[float]]


def collect(pipe: FacePipeline, data: Path) -> tuple[np.ndarray, np.ndarray]:
    """Crop-space meshes (n, 468, 2) and PFLD-106 points mapped into the same crops, on the
    calibration faces."""
    an = analyzer(pipe)
    meshes, pflds = [], []
    for path in _images(data, 3)[:CALIBRATION_FACES]:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        face = largest(pipe, bgr) if bgr is not None else None
        if bgr is None or face is None:
            continue
        mesh = an.mesh.predict(bgr, face)
        pts = an.landmarks.predict(bgr, face).astype(np.float64)
        meshes.append(mesh.crop_points[:, :2])
        pflds.append(pts @ mesh.matrix[:, :2].T + mesh.matrix[:, 2])
    return np.array(meshes), np.array(pflds)


def _arc(poly: np.ndarray) -> np.ndarray:
    """Cumulative arc length of a polyline, normalised to 0..1."""
    s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(poly, axis=0), axis=1))])
    out: np.ndarray = s / s[-1]
    return out


def _at(verts: tuple[int, ...], mean: np.ndarray, frac: float) -> Entry:
    """The point at arc fraction `frac` of the polyline `verts` of the mean mesh."""
    s = _arc(mean[list(verts)])
    k = int(np.clip(np.searchsorted(s, frac, side="right") - 1, 0, len(verts) - 2))
    t = float((frac - s[k]) / (s[k + 1] - s[k]))
    if t < 1e-3:
        return [[verts[k], 1.0]]
    if t > 1 - 1e-3:
        return [[verts[k + 1], 1.0]]
    w = round(t, 4)
    return [[verts[k], round(1 - w, 4)], [verts[k + 1], w]]


def _project(poly: np.ndarray, p: np.ndarray) -> float:
    """Arc fraction of the point of `poly` nearest to `p`."""
    s = _arc(poly)
    best, where = np.inf, 0.0
    for k in range(len(poly) - 1):
        a, b = poly[k], poly[k + 1]
        t = float(np.clip(np.dot(p - a, b - a) / max(np.dot(b - a, b - a), 1e-12), 0, 1))
        d = float(np.linalg.norm(a + t * (b - a) - p))
        if d < best:
            best, where = d, s[k] + t * (s[k + 1] - s[k])
    return float(where)


def _mirror(mean: np.ndarray) -> np.ndarray:
    """Vertex -> its mirror vertex (nearest point of the mesh mirrored about its midline)."""
    mid = float(mean[[1, 2, 0, 17, 152, 168]][:, 0].mean())
    flipped = mean.copy()
    flipped[:, 0] = 2 * mid - flipped[:, 0]
    pair: np.ndarray = np.argmin(((flipped[:, None] - mean[None]) ** 2).sum(-1), axis=1)
    return pair


def build(meshes: np.ndarray, pflds: np.ndarray, ship: list[str]) -> dict[str, Any]:
    mean = meshes.mean(axis=0)
    mp = pflds.mean(axis=0)
    pts: dict[int, Entry] = {j: [[v, 1.0]] for j, v in SINGLE.items()}
    # Brows.
    for (up, lo), tip, inner_up, inner_lo, upper, lower in (
        (BROW_LEFT, 33, 37, 67, (34, 35, 36), (64, 65, 66)),
        (BROW_RIGHT, 42, 38, 68, (41, 40, 39), (71, 70, 69)),
    ):
        pts[tip] = [[up[0], 0.5], [lo[0], 0.5]]
        pts[inner_up], pts[inner_lo] = [[up[-1], 1.0]], [[lo[-1], 1.0]]
        for j, f in zip(upper, (0.25, 0.5, 0.75), strict=True):
            pts[j] = _at(up, mean, f)
        for j, f in zip(lower, (0.25, 0.5, 0.75), strict=True):
            pts[j] = _at(lo, mean, f)
    # Eyes: corners, lid top/bottom, half-way points between them, centre and pupil.
    for (up, lo, top, bot), (outer, inner, jt, jb, uo, ui, lo_o, lo_i, centre, pupil) in (
        (EYE_LEFT, (52, 55, 72, 73, 53, 54, 57, 56, 74, 104)),
        (EYE_RIGHT, (61, 58, 75, 76, 60, 59, 62, 63, 77, 105)),
    ):
        pts[outer], pts[inner] = [[up[0], 1.0]], [[up[-1], 1.0]]
        pts[jt], pts[jb] = [[top, 1.0]], [[bot, 1.0]]
        ft = float(_arc(mean[list(up)])[up.index(top)])
        fb = float(_arc(mean[list(lo)])[lo.index(bot)])
        pts[uo], pts[ui] = _at(up, mean, ft / 2), _at(up, mean, (ft + 1) / 2)
        pts[lo_o], pts[lo_i] = _at(lo, mean, fb / 2), _at(lo, mean, (fb + 1) / 2)
        centre_entry = [[up[0], 0.25], [up[-1], 0.25], [top, 0.25], [bot, 0.25]]
        pts[centre], pts[pupil] = centre_entry, centre_entry
    # Mouth edges.
    pts[85] = _at(LIP_UPPER_LEFT, mean, 0.5)
    pts[89] = _at(LIP_UPPER_RIGHT, mean, 0.5)
    pts[91], pts[92] = _at(LIP_LOWER_RIGHT, mean, 1 / 3), _at(LIP_LOWER_RIGHT, mean, 2 / 3)
    pts[95], pts[94] = _at(LIP_LOWER_LEFT, mean, 1 / 3), _at(LIP_LOWER_LEFT, mean, 2 / 3)
    pts[97] = _at(INNER_UPPER_LEFT, mean, 0.5)
    pts[99] = _at(INNER_UPPER_RIGHT, mean, 0.5)
    pts[101] = _at(INNER_LOWER_RIGHT, mean, 0.5)
    pts[103] = _at(INNER_LOWER_LEFT, mean, 0.5)
    # Nose points without a named vertex: symmetric pair nearest to PFLD-106's mean.
    mirror = _mirror(mean)
    for jl, jr in NEAREST_PAIRS:
        cost = np.linalg.norm(mean - mp[jl], axis=1) + np.linalg.norm(mean[mirror] - mp[jr], axis=1)
        v = int(np.argmin(cost))
        pts[jl], pts[jr] = [[v, 1.0]], [[int(mirror[v]), 1.0]]
    # Contour: arc fractions of PFLD's contour along the mesh jaw, symmetrised.
    pairs = list(zip(meshes, pflds, strict=True))
    fl = [np.median([_project(m[list(JAW_LEFT)], p[k]) for m, p in pairs]) for k in range(17)]
    fr = [np.median([_project(m[list(JAW_RIGHT)], p[32 - k]) for m, p in pairs]) for k in range(17)]
    fracs = [float((a + b) / 2) for a, b in zip(fl, fr, strict=True)]
    fracs[16] = 1.0
    for k, f in enumerate(fracs):
        pts[k] = _at(JAW_LEFT, mean, f)
        pts[32 - k] = _at(JAW_RIGHT, mean, f)
    assert sorted(pts) == list(range(106)), sorted(set(range(106)) - set(pts))
    return {
        "source": "tools/mesh106_table.py (MediaPipe face mesh 468 -> API 106 order)",
        "points": [pts[j] for j in range(106)],
        "ship_parts": ship,
        "contour_arc_fractions": [round(f, 4) for f in fracs],
        "calibration_faces": len(meshes),
        "parts": {k: list(v) for k, v in PARTS.items()},
        "groups": {
            "use": "api_point[j] = sum(weight * mesh_point[vertex] for vertex, weight in "
            "points[j]); image left/right; MediaPipe's standard vertex numbering",
            "contour": "jaw polylines of the mesh face oval, image-left "
            f"{list(JAW_LEFT)} and image-right {list(JAW_RIGHT)} (chin 152 = API 16); API k "
            "sits at contour_arc_fractions[k] of the arc, the median fraction where PFLD-106's "
            "contour point k projects onto the mesh jaw on the calibration faces (left and "
            "right averaged), frozen on the calibration mean mesh as a two-vertex mix",
            "brows": f"upper/lower edge polylines {BROW_LEFT} and {BROW_RIGHT} (outer->inner); "
            "outer tip = mean of the two outer vertices, inner corners = the inner vertices, "
            "quarter/middle points = arc fractions 0.25/0.5/0.75",
            "eyes": f"lid polylines {EYE_LEFT[:2]} and {EYE_RIGHT[:2]} (outer->inner); corners "
            "and lid top/bottom are vertices, the quarter points are half-way along the lid "
            "arc between corner and top/bottom, the centre (74/77) and the pupil (104/105) are "
            "both the mean of corners, top and bottom (the 468-point mesh has no iris)",
            "nose": "bridge 168, 6, 195, tip 4 (on the calibration faces nearer than vertex 1 "
            "to both PFLD-106's tip and the detector's nose keypoint), subnasale 2; the wing, "
            "sill, side-wall and "
            "nose-root side points (47, 48, 50, 51, 78-83) have no named vertex: the "
            "mirror-symmetric vertex pair nearest to PFLD-106's mean position there",
            "mouth": "corners 61/291, inner corners 78/308, outer centres 0/17, inner centres "
            "13/14, bow peaks 37/267; near-corner points = arc middle corner->peak on the upper "
            "lip and thirds corner->centre on the lower lip; inner-lip side points = arc "
            "middle inner corner->centre",
        },
    }


def markdown(table: dict[str, Any]) -> str:
    """The table as a document: the rules per group, then one row per API point."""
    names = json.loads(NAMES_PATH.read_text())["api_point_names"]
    part_of = {j: part for part, idx in PARTS.items() for j in idx}
    ship = set(table["ship_parts"])
    out = [
        "# The API's 106 landmarks from the 468-point mesh",
        "",
        "Generated by `tools/mesh106_table.py` with `edge/data/mesh106_map.json`; do not edit.",
        "API order and names: the 106-landmark order document (image left/right). Vertex",
        "numbers: MediaPipe's face mesh. A point is one vertex or a fixed weighted mean.",
        "",
        f"Served from the mesh (`landmarks.source: evaluated`): {', '.join(sorted(ship)) or 'none'}"
        "; every other part is PFLD-106. `edge-face eval faces` prints the figures behind it.",
        "",
        "## How each group was chosen",
        "",
    ]
    out += [f"* **{k}**: {v}" for k, v in table["groups"].items() if k != "use"]
    out += ["", "## The table", "", "| API | name | part | mesh vertices (weight) | served from |"]
    out.append("|---:|---|---|---|---|")
    for j, entry in enumerate(table["points"]):
        verts = " + ".join(f"{v} ({w:g})" if w != 1 else str(v) for v, w in entry)
        src = "mesh" if part_of[j] in ship else "PFLD-106"
        out.append(f"| {j} | `{names[j]}` | {part_of[j]} | {verts} | {src} |")
    return "\n".join(out) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=None, help="test data folder")
    ap.add_argument(
        "--ship",
        nargs="*",
        default=None,
        choices=sorted(PARTS),
        help="parts the evaluation found no worse (default: keep the file's ship_parts)",
    )
    ap.add_argument("--write", action="store_true", help="write edge/data/mesh106_map.json")
    args = ap.parse_args()
    data = testdata_dir(args.data, "mesh106_table")
    ship = args.ship
    if ship is None:
        ship = json.loads(MAP_PATH.read_text())["ship_parts"] if MAP_PATH.is_file() else []
    meshes, pflds = collect(Models.load(load_settings(None)).pipeline, data)
    out = build(meshes, pflds, ship)
    text = json.dumps(out, indent=1) + "\n"
    if args.write:
        MAP_PATH.write_text(text, encoding="utf-8")
        DOC_PATH.write_text(markdown(out), encoding="utf-8")
        print(f"wrote {MAP_PATH.relative_to(REPO)} ({out['calibration_faces']} faces)")
        print(f"wrote {DOC_PATH.relative_to(REPO)}")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
