"""Head pose from the 468-point mesh against the shipped FSA-Net + eye line (the swap gate).

The mesh's 3D points (crop pixels, z on the x scale) are fitted rigidly (Kabsch with scale)
to a reference mesh: the mean crop-space mesh of calibration portraits (faces_by_identity,
every fourth image from the fourth), made left-right symmetric by pairing each point with
the nearest point of its mirror image, so that its frontal pose is yaw 0 by construction.
Roll adds the crop's own eye-line turn. No absolute ground truth exists in the test data, so
the protocol is `pose.py`'s: test portraits (every fourth from the third, disjoint) rotated by
+-20 degrees and mirrored; lower is better in every column. The swap ships only if no worse.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.evaluation.report import table
from edge.vision.details import DetailAnalyzer
from edge.vision.pipeline import FacePipeline
from edge.vision.types import Face

FACES = 30
Pose = tuple[float, float, float]  # yaw, pitch, roll in API signs, degrees


def analyzer(pipe: FacePipeline) -> DetailAnalyzer:
    """The pipeline's own detail analyzer (the one the API uses), with its model wrappers."""
    an = pipe.details
    if not isinstance(an, DetailAnalyzer):
        raise TypeError(f"the pipeline's detail analyzer is a {type(an).__name__}")
    return an


def _images(testdata: Path, start: int) -> list[Path]:
    files = sorted(
        p
        for p in (testdata / "faces_by_identity").glob("*/*")
        if p.suffix.lower() in {".jpg", ".jpeg", ".png"}
    )
    return files[start::4]


def largest(pipe: FacePipeline, bgr: np.ndarray) -> Face | None:
    faces = [a.face for a in pipe.detect_all(bgr)]
    return max(faces, key=lambda f: f.area) if faces else None


def reference(pipe: FacePipeline, testdata: Path) -> np.ndarray:
    """Symmetrised mean mesh (468, 3), centred and scaled to unit RMS in x, y."""
    an = analyzer(pipe)
    meshes = []
    for path in _images(testdata, 3)[:60]:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        face = largest(pipe, bgr) if bgr is not None else None
        if bgr is None or face is None:
            continue
        p = an.mesh.predict(bgr, face).crop_points.copy()
        p -= p.mean(axis=0)
        meshes.append(p / math.sqrt(float((p[:, :2] ** 2).sum(axis=1).mean())))
    ref = np.mean(meshes, axis=0)
    mirror = ref * np.array([-1.0, 1.0, 1.0])
    pair = np.argmin(((mirror[None, :, :] - ref[:, None, :]) ** 2).sum(axis=2), axis=1)
    sym: np.ndarray = (ref + mirror[pair]) / 2.0
    centred: np.ndarray = sym - sym.mean(axis=0)
    return centred


def mesh_pose(pipe: FacePipeline, ref: np.ndarray, bgr: np.ndarray, face: Face) -> Pose:
    """Yaw, pitch, roll (API signs) of the rigid rotation taking `ref` onto the face mesh."""
    mesh = analyzer(pipe).mesh.predict(bgr, face)
    p = mesh.crop_points - mesh.crop_points.mean(axis=0)
    u, _, vt = np.linalg.svd(p.T @ ref)
    d = np.diag([1.0, 1.0, float(np.sign(np.linalg.det(u @ vt)))])
    rot = (u @ d @ vt).T
    yaw = math.degrees(math.asin(max(-1.0, min(1.0, float(rot[0, 2])))))
    pitch = math.degrees(math.atan2(float(rot[1, 2]), float(rot[2, 2])))
    roll = math.degrees(math.atan2(-float(rot[0, 1]), float(rot[0, 0])))
    m = mesh.matrix
    roll += math.degrees(math.atan2(float(m[1, 0]), float(m[0, 0])))
    return yaw, pitch, roll


def evaluate(pipe: FacePipeline, testdata: Path) -> dict[str, Any]:
    """Roll error, yaw/pitch drift under +-20 deg rotation, mirror |yaw sum|, both methods."""
    an = analyzer(pipe)
    if not an.has_mesh:
        return {"skipped": f"pack {pipe.registry.pack_name} has no landmarks468 (mesh) role"}
    ref = reference(pipe, testdata)

    def current(bgr: np.ndarray, face: Face) -> Pose:
        a = an.pose.estimate(bgr, face, an.landmarks.predict(bgr, face))
        return a.yaw, a.pitch, a.roll

    def mesh(bgr: np.ndarray, face: Face) -> Pose:
        return mesh_pose(pipe, ref, bgr, face)

    methods: dict[str, Callable[[np.ndarray, Face], Pose]] = {
        "FSA-Net + eye line (shipped)": current,
        "mesh rigid fit": mesh,
    }
    errs: dict[str, dict[str, list[float]]] = {
        m: {"roll err": [], "yaw drift": [], "pitch drift": [], "mirror |yaw sum|": []}
        for m in methods
    }
    n = 0
    for path in _images(testdata, 2):
        if n >= FACES:
            break
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            continue
        h, w = bgr.shape[:2]
        views = {"orig": bgr, "mirror": np.ascontiguousarray(bgr[:, ::-1])}
        for deg in (20, -20):
            rot = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), deg, 1.0)
            views[str(deg)] = cv2.warpAffine(bgr, rot, (w, h))
        faces = {k: largest(pipe, v) for k, v in views.items()}
        if any(f is None for f in faces.values()):
            continue
        n += 1
        for name, fn in methods.items():
            got = {k: fn(views[k], f) for k, f in faces.items() if f is not None}
            y0, p0, r0 = got["orig"]
            e = errs[name]
            for deg in (20, -20):
                y, p, r = got[str(deg)]
                e["roll err"].append(abs((r - r0 - deg + 180.0) % 360.0 - 180.0))
                e["yaw drift"].append(abs(y - y0))
                e["pitch drift"].append(abs(p - p0))
            e["mirror |yaw sum|"].append(abs(y0 + got["mirror"][0]))
    return {
        "faces": n,
        "methods": {m: {k: float(np.mean(v)) for k, v in e.items()} for m, e in errs.items()},
    }


def format_table(res: dict[str, Any]) -> str:
    if "skipped" in res:
        return f"Head pose from the mesh: skipped, {res['skipped']}"
    cols = ["roll err", "yaw drift", "pitch drift", "mirror |yaw sum|"]
    rows = [[m, *(f"{v[c]:.2f}" for c in cols)] for m, v in res["methods"].items()]
    return "\n".join(
        [
            f"Head pose on {res['faces']} portraits rotated +-20 deg and mirrored "
            "(degrees, lower is better; the shipped method stays unless the mesh is no worse)",
            table(["method", *cols], rows),
        ]
    )
