"""Occlusion measures of `edge-face eval faces`: per-part completeness and the mask attribute,
the previous behaviour and the current one in the same run, on the same faces.

Completeness: real portraits of the shared test set (faces_by_identity, every fourth image
from the second: disjoint from the 60 portraits the visibility scale was fitted on), each
measured clean and with synthetic occlusions drawn on the real face at the mesh's part
positions: a dark bar over both eyebrows, a skin-coloured bar over them (a hand or a fringe
of the face's own tone) and a mask-coloured patch from cheek to cheek over the nose and
mouth. The face box stays the clean image's, so the detector's jitter stays out. "previous"
is the completeness without the image evidence (landmarks inside the image, mask detector,
eye state); "current" is what the API returns.

Mask attribute: share of detected faces that get the attribute (previous: only when the
frame-level mask detector's box matches the face), and accuracy where the label is known
(identity portraits: no mask; awkward/masked_face_2: masks).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.evaluation import mesh_pose
from edge.evaluation.mesh_pose import analyzer as _analyzer
from edge.evaluation.mesh_pose import largest as _largest
from edge.evaluation.report import table
from edge.vision import quality as q
from edge.vision.mesh import PART_OUTLINES
from edge.vision.pipeline import FacePipeline
from edge.vision.types import Completeness, DetailFlags, Face

QUALITY = DetailFlags(quality=True)
FIELDS = {
    "leftEyeBrow": "left_eye_brow",
    "rightEyeBrow": "right_eye_brow",
    "leftEye": "left_eye",
    "rightEye": "right_eye",
    "nose": "nose",
    "mouth": "mouth",
    "faceContour": "face_contour",
}
OCCLUSIONS: dict[str, tuple[str, ...]] = {
    "dark bar over eyebrows": ("leftEyeBrow", "rightEyeBrow"),
    "skin bar over eyebrows": ("leftEyeBrow", "rightEyeBrow"),
    "mask patch": ("nose", "mouth", "faceContour"),
}
MASK_POLY = (234, 195, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152, 148, 176, 149,
             150, 136, 172, 58, 132, 93)  # fmt: skip
MAX_FACES = 60
KNOWN_MASKED = ("awkward/masked_face_2.jpeg",)


def _portraits(testdata: Path) -> list[Path]:
    files = sorted(
        p
        for p in (testdata / "faces_by_identity").glob("*/*")
        if p.suffix.lower() in {".jpg", ".jpeg", ".png"}
    )
    return files[1::4][:MAX_FACES]


def draw(bgr: np.ndarray, points: np.ndarray, kind: str) -> np.ndarray:
    """`bgr` with occlusion `kind` drawn at the mesh's image `points` (468, 2)."""
    out: np.ndarray = bgr.copy()
    iod = float(np.linalg.norm(points[263] - points[33]))
    if kind.endswith("bar over eyebrows"):
        idx = list(PART_OUTLINES["leftEyeBrow"] + PART_OUTLINES["rightEyeBrow"])
        lo = points[idx].min(axis=0) - np.array([0.06, 0.15]) * iod  # up into the forehead
        hi = points[idx].max(axis=0) + 0.06 * iod  # clear of the eyes and the face's sides
        colour: tuple[int, ...] = (40, 40, 40)
        if kind.startswith("skin"):
            x, y = (int(v) for v in points[151])
            patch = bgr[max(y - 3, 0) : y + 4, max(x - 3, 0) : x + 4].reshape(-1, 3)
            colour = tuple(int(v) for v in np.median(patch, axis=0)) if len(patch) else colour
        cv2.rectangle(out, (int(lo[0]), int(lo[1])), (int(hi[0]), int(hi[1])), colour, -1)
    else:
        poly = np.round(points[list(MASK_POLY)]).astype(np.int32)
        cv2.fillPoly(out, [poly], (215, 200, 170))
    return out


def _previous(pipe: FacePipeline, bgr: np.ndarray, face: Face) -> Completeness:
    """The completeness as it was before the image evidence (same models, same face)."""
    an = _analyzer(pipe)
    h, w = bgr.shape[:2]
    pts = an.landmarks.predict(bgr, face)
    hit = an.mask.match(bgr, face) if an.has_mask else None
    eyes = an.eyes.predict(bgr, pts) if an.has_eyes else None
    signals = q.OcclusionSignals(hit.mask_share if hit is not None else None, eyes)
    return q.completeness(pts, w, h, signals)


def _current(pipe: FacePipeline, bgr: np.ndarray, face: Face) -> Completeness:
    quality = pipe.details.analyze(bgr, face, QUALITY).quality
    if quality is None:
        raise RuntimeError("the analyzer returned no quality block for a quality request")
    return quality.completeness


def _vec(c: Completeness) -> np.ndarray:
    return np.array([float(getattr(c, f)) for f in FIELDS.values()], np.float64)


def completeness(pipe: FacePipeline, testdata: Path) -> dict[str, Any]:
    """Per method: clean values and, per occlusion, occluded-part and other-part changes."""
    an = _analyzer(pipe)
    if not an.has_mesh:
        return {"skipped": f"pack {pipe.registry.pack_name} has no landmarks468 (mesh) role"}
    clean: dict[str, list[np.ndarray]] = {"previous": [], "current": []}
    occluded: dict[str, dict[str, list[np.ndarray]]] = {
        k: {"previous": [], "current": []} for k in OCCLUSIONS
    }
    for path in _portraits(testdata):
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        face = _largest(pipe, bgr) if bgr is not None else None
        if bgr is None or face is None:
            continue
        mesh = an.mesh.predict(bgr, face)
        base = {
            "previous": _vec(_previous(pipe, bgr, face)),
            "current": _vec(_current(pipe, bgr, face)),
        }
        for m in clean:
            clean[m].append(base[m])
        for kind in OCCLUSIONS:
            img = draw(bgr, mesh.points, kind)
            occluded[kind]["previous"].append(_vec(_previous(pipe, img, face)) - base["previous"])
            occluded[kind]["current"].append(_vec(_current(pipe, img, face)) - base["current"])
    parts = list(FIELDS)
    out: dict[str, Any] = {"faces": len(clean["current"]), "clean": {}, "occluded": {}}
    for m, rows in clean.items():
        a = np.array(rows)
        out["clean"][m] = {
            p: {"mean": float(a[:, i].mean()), "sd": float(a[:, i].std()),
                "distinct": len(set(a[:, i].round(4).tolist()))}
            for i, p in enumerate(parts)
        }  # fmt: skip
    for kind, hidden in OCCLUSIONS.items():
        out["occluded"][kind] = {}
        for m, rows in occluded[kind].items():
            d = np.array(rows)
            hid = [parts.index(p) for p in hidden]
            eyes = [parts.index("leftEye"), parts.index("rightEye")]
            rest = [i for i in range(len(parts)) if i not in hid and i not in eyes]
            out["occluded"][kind][m] = {
                "hidden_change": float(d[:, hid].mean()),
                "hidden_dropped_0.2": float((d[:, hid] <= -0.2).mean()),
                "others_abs_change": float(np.abs(d[:, rest]).mean()),
                "eyes_abs_change": float(np.abs(d[:, eyes]).mean()),
                "others_by_part": {parts[i]: float(np.abs(d[:, i]).mean()) for i in rest},
            }
    return out


def mask_coverage(pipe: FacePipeline, testdata: Path) -> dict[str, Any]:
    """Faces with the mask attribute, previous (matched box only) vs current, and accuracy
    where the label is known."""
    an = _analyzer(pipe)
    if not an.has_mask:
        return {"skipped": f"pack {pipe.registry.pack_name} has no mask role"}
    files = sorted((testdata / "multi_face").iterdir()) + sorted(
        (testdata / "awkward").glob("masked_face_*")
    )
    labelled = [(p, False) for p in _portraits(testdata)]
    labelled += [(testdata / r, True) for r in KNOWN_MASKED]
    stats = {m: {"faces": 0, "with_attribute": 0, "labelled": 0, "correct": 0}
             for m in ("previous", "current")}  # fmt: skip
    items = [(p, None) for p in files] + labelled
    for path, label in items:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            continue
        for a in pipe.detect_all(bgr):
            hit = an.mask.match(bgr, a.face)
            now = hit or an.mask.classify(bgr, a.face)
            for m, h in (("previous", hit), ("current", now)):
                s = stats[m]
                s["faces"] += 1
                s["with_attribute"] += h is not None
                if label is not None:
                    s["labelled"] += 1
                    s["correct"] += h is not None and (h.mask_share >= 0.5) == label
    return stats


def evaluate(pipe: FacePipeline, testdata: Path) -> dict[str, Any]:
    return {
        "completeness": completeness(pipe, testdata),
        "mask": mask_coverage(pipe, testdata),
        "pose": mesh_pose.evaluate(pipe, testdata),
    }


def format_table(res: dict[str, Any]) -> str:
    out: list[str] = []
    comp = res["completeness"]
    if "skipped" in comp:
        out.append(f"Completeness: skipped, {comp['skipped']}")
    else:
        out.append(
            f"Completeness on {comp['faces']} clean portraits: mean / sd / distinct values "
            "per part (previous | current)"
        )
        rows = []
        for p in FIELDS:
            a, b = comp["clean"]["previous"][p], comp["clean"]["current"][p]
            rows.append([p, f"{a['mean']:.3f} / {a['sd']:.3f} / {a['distinct']}",
                         f"{b['mean']:.3f} / {b['sd']:.3f} / {b['distinct']}"])  # fmt: skip
        out.append(table(["part", "previous", "current"], rows))
        out += [
            "",
            "Synthetic occlusions drawn on the same faces: change of the hidden parts,"
            " share of hidden parts dropping >= 0.2, mean |change| of the other parts (eyes apart:"
            " their eye-state signal follows the 106 landmarks, which any occluder shifts)",
        ]
        rows = []
        for kind, by in comp["occluded"].items():
            for m in ("previous", "current"):
                r = by[m]
                change, dropped = r["hidden_change"], r["hidden_dropped_0.2"]
                others, eyes = r["others_abs_change"], r["eyes_abs_change"]
                worst = max(r["others_by_part"].items(), key=lambda kv: kv[1])
                rows.append([kind, m, f"{change:+.3f}", f"{dropped:.2f}", f"{others:.3f}",
                             f"{worst[0]} {worst[1]:.3f}", f"{eyes:.3f}"])  # fmt: skip
        out.append(table(["occlusion", "method", "hidden change", "dropped>=0.2",
                          "others |change|", "most moved other", "eyes |change|"],
                         rows))  # fmt: skip
    mask = res["mask"]
    out.append("")
    if "skipped" in mask:
        out.append(f"Mask attribute: skipped, {mask['skipped']}")
    else:
        out.append("Mask attribute (multi_face, awkward masked, portraits)")
        rows = [
            [m, s["faces"], s["with_attribute"], f"{s['correct']}/{s['labelled']}"]
            for m, s in mask.items()
        ]
        out.append(table(["method", "faces", "with mask attribute", "correct (labelled)"], rows))
    if "pose" in res:
        out += ["", mesh_pose.format_table(res["pose"])]
    return "\n".join(out)
