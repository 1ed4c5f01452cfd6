"""106 landmarks: PFLD-106 (the model) against the same points read off the 468-point mesh.

References here, none of them hand-labelled 106 points:
* dlib's 68 iBUG points on the dlib example faces (annotations/dlib_pascal_voc_faces.json):
  made by dlib's shape predictor, not by hand, on 18 small faces (37-90 px);
* the detector's 5 keypoints (eye centres, nose tip, mouth corners), on identity portraits;
* CompreFace's nose-tip points on group photos.
Plus one reference-free figure: mirror consistency (run on the mirrored image, mirror the
points back and swap the left/right pairs; the gap is the method's own left/right bias).

Errors are NME: mean point distance / inter-ocular distance (outer eye corners for dlib, the
detector's eye centres elsewhere), in percent, per part. The gate: a part ships from the mesh
only if the mesh is no worse than PFLD-106 in every column that measures that part.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.evaluation.mesh_pose import _images, analyzer, largest
from edge.evaluation.report import table
from edge.vision import mesh106
from edge.vision.pipeline import FacePipeline
from edge.vision.types import Face

PARTS = tuple(mesh106.PARTS)
FACES = 60  # identity portraits: every fourth from the second (the table calibrates on the 4th)

# iBUG 68 index -> API 106 index (jaw = every other contour point; the lid points 37/38, 40/41
# of iBUG sit at thirds of the lid, the API's 53/54, 56/57 at quarters: a small, shared bias).
API_OF_68: tuple[int, ...] = (
    *range(0, 33, 2),  # jaw 0-16
    33, 34, 35, 36, 37, 38, 39, 40, 41, 42,  # brows 17-26
    43, 44, 45, 46, 47, 48, 49, 50, 51,  # nose 27-35
    52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63,  # eyes 36-47
    *range(84, 104),  # mouth 48-67
)  # fmt: skip
PART_OF_68: dict[str, tuple[int, ...]] = {
    "contour": tuple(range(17)),
    "brows": tuple(range(17, 27)),
    "nose": tuple(range(27, 36)),
    "eyes": tuple(range(36, 48)),
    "mouth": tuple(range(48, 68)),
}
# Detector keypoint -> API point: eye centres, nose tip, mouth corners.
API_OF_KPS: dict[str, tuple[tuple[int, int], ...]] = {
    "eyes": ((0, 74), (1, 77)),
    "nose": ((2, 46),),
    "mouth": ((3, 84), (4, 90)),
}


def mirror_permutation() -> np.ndarray:
    """API index -> index of its mirror point (landmarks106.md §3, "Mirror pairs")."""
    pairs = [(j, 32 - j) for j in range(16)]
    pairs += list(zip(range(33, 38), range(42, 37, -1), strict=True))
    pairs += list(zip(range(64, 68), range(71, 67, -1), strict=True))
    pairs += [(47, 51), (48, 50), (52, 61), (53, 60), (54, 59), (55, 58), (56, 63), (57, 62)]
    pairs += [(72, 75), (73, 76), (74, 77), (78, 79), (80, 81), (82, 83)]
    pairs += [(84, 90), (85, 89), (86, 88), (91, 95), (92, 94), (96, 100), (97, 99)]
    pairs += [(101, 103), (104, 105)]
    perm = np.arange(106)
    for a, b in pairs:
        perm[a], perm[b] = b, a
    return perm


Method = Callable[[np.ndarray, Face], np.ndarray]


def methods(pipe: FacePipeline) -> dict[str, Method]:
    """The two sources of the 106 points, as the product runs them."""
    an = analyzer(pipe)
    return {
        "PFLD-106": an.landmarks.predict,
        "mesh-106": lambda bgr, face: mesh106.points106(an.mesh.predict(bgr, face)),
    }


def _read(path: Path) -> np.ndarray:
    """A test image, BGR; a missing one is an error (the annotations name it)."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(f"{path}: unreadable; check --data points at the test folder")
    out: np.ndarray = bgr
    return out


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return float(inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter))


def dlib68(pipe: FacePipeline, testdata: Path, fns: dict[str, Method]) -> dict[str, Any]:
    """NME per part against dlib's 68 points; each labelled face is matched to the detected
    face of highest IoU (>= 0.3: the detector's boxes are taller than dlib's)."""
    ann = json.loads((testdata / "annotations" / "dlib_pascal_voc_faces.json").read_text())
    errs: dict[str, dict[str, list[float]]] = {m: {p: [] for p in PARTS} for m in fns}
    n = missed = 0
    for rel, item in sorted(ann["images"].items()):
        labelled = item.get("faces_with_landmarks", [])
        if not labelled:
            continue
        bgr = _read(testdata / rel)
        faces = [a.face for a in pipe.detect_all(bgr)]
        for lab in labelled:
            x, y, w, h = lab["box_xywh"]
            box = np.array([x, y, x + w, y + h], np.float64)
            best = max(faces, key=lambda f: _iou(box, f.box.astype(np.float64)), default=None)
            if best is None or _iou(box, best.box.astype(np.float64)) < 0.3:
                missed += 1
                continue
            ref = np.asarray(lab["landmarks68"], np.float64)
            iod = float(np.linalg.norm(ref[45] - ref[36]))
            n += 1
            for m, fn in fns.items():
                got = fn(bgr, best).astype(np.float64)[list(API_OF_68)]
                d = np.linalg.norm(got - ref, axis=1) / iod
                for part, idx in PART_OF_68.items():
                    errs[m][part].append(float(d[list(idx)].mean()))
    return {"faces": n, "missed": missed, "nme": _means(errs)}


def _means(errs: dict[str, dict[str, list[float]]]) -> dict[str, dict[str, float]]:
    return {
        m: {p: 100.0 * float(np.mean(v)) if v else float("nan") for p, v in e.items()}
        for m, e in errs.items()
    }


def _kps_iod(face: Face) -> float:
    return float(np.linalg.norm(face.kps[1] - face.kps[0]))


def portraits(pipe: FacePipeline, testdata: Path, fns: dict[str, Method]) -> dict[str, Any]:
    """Detector-keypoint agreement, mirror consistency and ms/face on identity portraits."""
    kps: dict[str, dict[str, list[float]]] = {m: {p: [] for p in API_OF_KPS} for m in fns}
    mirror: dict[str, dict[str, list[float]]] = {m: {p: [] for p in PARTS} for m in fns}
    spent = dict.fromkeys(fns, 0.0)
    perm = mirror_permutation()
    n = 0
    for path in _images(testdata, 1):
        if n >= FACES:
            break
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        face = largest(pipe, bgr) if bgr is not None else None
        if bgr is None or face is None:
            continue
        flipped = np.ascontiguousarray(bgr[:, ::-1])
        face_f = largest(pipe, flipped)
        if face_f is None:
            continue
        n += 1
        iod = _kps_iod(face)
        w = bgr.shape[1]
        for m, fn in fns.items():
            t0 = time.perf_counter()
            pts = fn(bgr, face).astype(np.float64)
            spent[m] += time.perf_counter() - t0
            for part, pairs in API_OF_KPS.items():
                d = [np.linalg.norm(pts[j] - face.kps[k]) / iod for k, j in pairs]
                kps[m][part].append(float(np.mean(d)))
            back = fn(flipped, face_f).astype(np.float64)
            back[:, 0] = (w - 1) - back[:, 0]
            back = back[perm]
            d = np.linalg.norm(back - pts, axis=1) / iod
            for part, idx in mesh106.PARTS.items():
                mirror[m][part].append(float(d[list(idx)].mean()))
    return {
        "faces": n,
        "kps": _means(kps),
        "mirror": _means(mirror),
        "ms_per_face": {m: 1000.0 * s / max(n, 1) for m, s in spent.items()},
    }


def noses(pipe: FacePipeline, testdata: Path, fns: dict[str, Method]) -> dict[str, Any]:
    """Nose tip (API 46) against CompreFace's nose points, for faces that hold exactly one."""
    ann = json.loads((testdata / "annotations" / "compreface_nose_points.json").read_text())
    errs: dict[str, list[float]] = {m: [] for m in fns}
    for rel, item in sorted(ann["images"].items()):
        bgr = _read(testdata / rel)
        faces = [a.face for a in pipe.detect_all(bgr)]
        for x, y in item["nose_tips_xy"]:
            hits = [f for f in faces if f.box[0] <= x <= f.box[2] and f.box[1] <= y <= f.box[3]]
            if len(hits) != 1:
                continue
            face = hits[0]
            for m, fn in fns.items():
                tip = fn(bgr, face)[46].astype(np.float64)
                errs[m].append(math.hypot(tip[0] - x, tip[1] - y) / _kps_iod(face))
    return {
        "faces": len(next(iter(errs.values()), [])),
        "nme": {m: 100.0 * float(np.mean(v)) if v else float("nan") for m, v in errs.items()},
    }


def columns(res: dict[str, Any], method: str) -> dict[str, dict[str, float]]:
    """Part -> {column: NME} for one method: every figure that measures that part."""
    out: dict[str, dict[str, float]] = {p: {} for p in PARTS}
    for p in PARTS:
        out[p]["dlib-68"] = res["dlib68"]["nme"][method][p]
        if p in API_OF_KPS:
            out[p]["detector kps"] = res["portraits"]["kps"][method][p]
        out[p]["mirror"] = res["portraits"]["mirror"][method][p]
    out["nose"]["CompreFace nose"] = res["noses"]["nme"][method]
    return out


def gate(res: dict[str, Any]) -> list[str]:
    """Parts where the mesh is no worse than PFLD-106 in every column measuring them."""
    old, new = columns(res, "PFLD-106"), columns(res, "mesh-106")
    return [p for p in PARTS if all(new[p][c] <= old[p][c] for c in old[p])]


def evaluate(pipe: FacePipeline, testdata: Path) -> dict[str, Any]:
    an = analyzer(pipe)
    if not an.has_mesh:
        return {"skipped": f"pack {pipe.registry.pack_name} has no landmarks468 (mesh) role"}
    fns = methods(pipe)
    res: dict[str, Any] = {
        "dlib68": dlib68(pipe, testdata, fns),
        "portraits": portraits(pipe, testdata, fns),
        "noses": noses(pipe, testdata, fns),
    }
    res["mesh_no_worse"] = gate(res)
    res["shipped"] = list(mesh106.table().ship_parts)
    return res


def format_table(res: dict[str, Any]) -> str:
    if "skipped" in res:
        return f"106 landmarks, PFLD-106 vs mesh-106: skipped, {res['skipped']}"
    d, p, n = res["dlib68"], res["portraits"], res["noses"]
    old, new = columns(res, "PFLD-106"), columns(res, "mesh-106")
    rows = []
    for part in PARTS:
        for col in old[part]:
            a, b = old[part][col], new[part][col]
            rows.append([part, col, f"{a:.2f}", f"{b:.2f}", "mesh" if b <= a else "PFLD"])
    ms = p["ms_per_face"]
    return "\n".join(
        [
            "106 landmarks: PFLD-106 vs mesh-106 (NME % of inter-ocular distance, lower is better)",
            f"  dlib-68 = dlib shape-predictor points, not hand-labelled ({d['faces']} faces, "
            f"{d['missed']} unmatched); detector kps and mirror = {p['faces']} identity "
            f"portraits; CompreFace nose = {n['faces']} group-photo faces",
            table(["part", "reference", "PFLD-106", "mesh-106", "better"], rows),
            f"ms/face: PFLD-106 {ms['PFLD-106']:.1f}, mesh-106 {ms['mesh-106']:.1f} "
            "(mesh + table; the mesh already runs when quality is asked)",
            f"mesh no worse in every column: {', '.join(res['mesh_no_worse']) or 'none'}; "
            f"shipped from the mesh: {', '.join(res['shipped']) or 'none'}",
        ]
    )
