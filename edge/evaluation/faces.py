"""`edge-face eval`: verification, 1:N open-set, detection and attribute accuracy.

Runs the product pipeline (not a re-implementation) on the labelled test folder, so the
figures are what the API would do: one embedding per image through the fast path, the slow
detector for detection. Embeddings are computed once per run and reused by every metric.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.config import Settings, testdata_dir
from edge.engine import Models
from edge.evaluation import attributes as attr_eval
from edge.evaluation import fusion as recognizers
from edge.evaluation import landmarks106 as landmarks106_eval
from edge.evaluation import occlusion as occlusion_eval
from edge.evaluation.report import table
from edge.evaluation.verification import (
    Pairs,
    Progress,
    embed_samples,
    identity_items,
    open_set,
    pair_cosines,
    roc_auc,
    tar_at_far,
)
from edge.vision.detection import build_detectors
from edge.vision.pipeline import FacePipeline
from edge.vision.types import Face

FARS = (1e-3, 1e-4)
LABELLED_COUNTS = ("fr_two_people.jpg", "deepface_couple.jpg", "fr_obama_and_biden.jpg")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data", type=Path, default=None, help="labelled test folder (default: $EDGE_TESTDATA)"
    )
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    parser.add_argument("--no-attributes", action="store_true", help="skip age/gender/emotion")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")


# Verification -----------------------------------------------------------------------------
def _verification_row(
    name: str, pairs: Pairs, mask_g: Any, mask_i: Any, thr_cos: float
) -> dict[str, Any]:
    g, i = pairs.genuine[mask_g], pairs.impostor[mask_i]
    row: dict[str, Any] = {
        "subset": name,
        "genuine": len(g),
        "impostor": len(i),
        "auc": roc_auc(g, i),
    }
    for far in FARS:
        tar, _ = tar_at_far(g, i, far)
        row[f"tar@far={far:g}"] = tar
        row[f"far={far:g} resolvable"] = bool(len(i) * far >= 1)
    row["tar@0.9"] = float(np.mean(g >= thr_cos)) if len(g) else float("nan")
    row["far@0.9"] = float(np.mean(i >= thr_cos)) if len(i) else float("nan")
    return row


def verification(pairs: Pairs, thr_cos: float) -> list[dict[str, Any]]:
    rows = [_verification_row("all", pairs, slice(None), slice(None), thr_cos)]
    for kind in sorted(set(pairs.genuine_kind) - {"mixed"}):
        rows.append(
            _verification_row(
                kind, pairs, pairs.genuine_kind == kind, pairs.impostor_kind == kind, thr_cos
            )
        )
    return rows


# Detection --------------------------------------------------------------------------------
def _iou_matrix(gt: np.ndarray, det: np.ndarray) -> np.ndarray:
    if len(gt) == 0 or len(det) == 0:
        return np.zeros((len(gt), len(det)))
    x1 = np.maximum(gt[:, None, 0], det[None, :, 0])
    y1 = np.maximum(gt[:, None, 1], det[None, :, 1])
    x2 = np.minimum(gt[:, None, 2], det[None, :, 2])
    y2 = np.minimum(gt[:, None, 3], det[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    ag = (gt[:, 2] - gt[:, 0]) * (gt[:, 3] - gt[:, 1])
    ad = (det[:, 2] - det[:, 0]) * (det[:, 3] - det[:, 1])
    iou: np.ndarray = inter / (ag[:, None] + ad[None, :] - inter)
    return iou


def _greedy_matches(iou: np.ndarray, thr: float) -> int:
    """One-to-one matches at IoU >= thr, best pairs first."""
    n = 0
    iou = iou.copy()
    while iou.size and iou.max() >= thr:
        r, c = np.unravel_index(int(iou.argmax()), iou.shape)
        iou[r, :] = -1
        iou[:, c] = -1
        n += 1
    return n


def detection(
    testdata: Path, finders: dict[str, Any], progress: bool
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """dlib boxes (IoU 0.4/0.5) and CompreFace nose points, per detector configuration."""
    ann = testdata / "annotations"
    dlib = json.loads((ann / "dlib_pascal_voc_faces.json").read_text())["images"]
    noses = json.loads((ann / "compreface_nose_points.json").read_text())["images"]
    images = sorted(set(dlib) | set(noses) | {f"multi_face/{n}" for n in LABELLED_COUNTS})
    found: dict[str, dict[str, list[Face]]] = {name: {} for name in finders}
    spent = dict.fromkeys(finders, 0.0)
    bar = Progress("detection", len(images), progress)
    for k, rel in enumerate(images, 1):
        img = cv2.imread(str(testdata / rel), cv2.IMREAD_COLOR)
        for name, fn in finders.items():
            t0 = time.perf_counter()
            found[name][rel] = fn(img)
            spent[name] += time.perf_counter() - t0
        bar.step(k)
    rows = []
    for name in finders:
        r: dict[str, Any] = {"detector": name}
        gts = dets = 0
        m = {0.4: 0, 0.5: 0}
        for rel, v in dlib.items():
            gt = np.array(
                [[x, y, x + w, y + h] for x, y, w, h in (f["box_xywh"] for f in v["faces"])]
            )
            det = np.array([f.box for f in found[name][rel]]).reshape(-1, 4)
            iou = _iou_matrix(gt.astype(np.float64), det.astype(np.float64))
            gts, dets = gts + len(gt), dets + len(det)
            for t in m:
                m[t] += _greedy_matches(iou, t)
        for t, n in m.items():
            r[f"dlib recall@{t}"] = n / gts if gts else float("nan")
            r[f"dlib precision@{t}"] = n / dets if dets else float("nan")
        points = ok_points = ok_images = boxes = boxes_hit = 0
        for rel, v in noses.items():
            faces = found[name][rel]
            pts = np.array(v["nose_tips_xy"], dtype=np.float64)
            inside = np.array(
                [
                    [f.box[0] <= x <= f.box[2] and f.box[1] <= y <= f.box[3] for f in faces]
                    for x, y in pts
                ]
            ).reshape(len(pts), len(faces))
            exact = inside.sum(1) == 1
            points += len(pts)
            ok_points += int(exact.sum())
            ok_images += int(exact.all() and len(faces) == len(pts))
            boxes += len(faces)
            boxes_hit += int(inside.any(0).sum())
        r["nose recall"] = ok_points / points if points else float("nan")
        r["nose precision"] = boxes_hit / boxes if boxes else float("nan")
        r["nose images exact"] = f"{ok_images}/{len(noses)}"
        # Group photos: every labelled face of both sets (boxes at IoU 0.4, nose points).
        r["group recall"] = (m[0.4] + ok_points) / max(gts + points, 1)
        r["group faces"] = f"{m[0.4] + ok_points}/{gts + points}"
        r["ms/image"] = round(1000.0 * spent[name] / max(len(images), 1), 1)
        rows.append(r)
    labelled = _labelled_counts(testdata)
    counts = []
    for image in LABELLED_COUNTS:
        rel = f"multi_face/{image}"
        row = {"image": image, "labelled": labelled.get(rel)}
        row.update({name: len(found[name][rel]) for name in finders})
        counts.append(row)
    return rows, counts


def _each_side_rule(pipe: FacePipeline, bgr: np.ndarray) -> list[Face]:
    """detect_all as it was before `face_side_px`: both box sides >= min_face_px, a rule the
    detectors' narrow boxes failed on faces labelled above 32 px (kept to compare)."""
    pipe._detectors()  # opens them, the tiled one included
    tiled = pipe._slow_all
    assert tiled is not None
    h, w = bgr.shape[:2]
    min_px = pipe.settings.detection.min_face_px
    faces = [f for f in tiled.detect(bgr) if min(f.bbox.clipped_size(w, h)) >= min_px]
    return sorted(faces, key=lambda f: -f.bbox.clip(w, h).area)


def _labelled_counts(testdata: Path) -> dict[str, int | None]:
    """File -> labelled face count, from one read of SOURCES.json."""
    src = json.loads((testdata / "SOURCES.json").read_text(encoding="utf-8"))
    return {f["file"]: f.get("labels", {}).get("faces") for f in src["files"]}


# Command ----------------------------------------------------------------------------------
def evaluate(
    pipe: FacePipeline, testdata: Path, *, attributes: bool = True, progress: bool = True
) -> dict[str, Any]:
    cal = pipe.calibration
    thr = cal.recommended_threshold

    def embed(bgr: np.ndarray) -> np.ndarray:
        emb = pipe.analyze_largest(bgr).embedding
        if emb is None:  # analyze_largest embeds unless told not to
            raise RuntimeError("the pipeline returned a face without an embedding")
        return emb

    samples = embed_samples(embed, testdata, identity_items(testdata), progress)
    pairs = pair_cosines(samples)
    thr_cos = cal.cos_at_threshold
    kinds: dict[str, dict[str, int]] = {}
    for s in samples:
        k = kinds.setdefault(s.kind, {"images": 0, "no_face": 0})
        k["images"] += 1
        k["no_face"] += s.embedding is None
    osr = open_set(samples, lambda c: np.asarray(cal.score(c)), thr)
    fast, slow = build_detectors(pipe.registry, pipe.settings)
    finders = {
        "fast (raw)": fast.detect,
        "slow (raw)": slow.detect,
        "detect_all, before (each side >=32px)": lambda img: _each_side_rule(pipe, img),
        "detect_all (>=32px)": lambda img: [a.face for a in pipe.detect_all(img)],
    }
    det_rows, counts = detection(testdata, finders, progress)
    result: dict[str, Any] = {
        "dataset": str(testdata.name),
        "pack": pipe.registry.pack_name,
        "recommended_threshold": thr,
        "cos_at_threshold": thr_cos,
        "images": kinds,
        "verification": verification(pairs, thr_cos),
        "recognizers": recognizers.compare_recognizers(pipe, testdata, progress),
        "identification": osr.__dict__,
        "detection": det_rows,
        "detection_counts": counts,
        "landmarks106": landmarks106_eval.evaluate(pipe, testdata),
    }
    if attributes:
        result["attributes"] = attr_eval.evaluate(pipe, testdata)
        result["_attributes_table"] = attr_eval.format_table(result["attributes"])
        result["occlusion"] = occlusion_eval.evaluate(pipe, testdata)
        result["age_gender_models"] = attr_eval.compare_age_gender(pipe, testdata)
    return result


def format_report(res: dict[str, Any]) -> str:
    out = [
        f"pack {res['pack']}, recommended threshold {res['recommended_threshold']} "
        f"(cosine {res['cos_at_threshold']:.4f})",
        "",
    ]
    out.append("Images per kind (no usable face = 223/224 on the fast path)")
    out.append(
        table(
            ["image_kind", "images", "no face"],
            [[k, v["images"], v["no_face"]] for k, v in sorted(res["images"].items())],
        )
    )
    out += ["", "Verification (pairs within each kind; * = fewer than 1/FAR impostor pairs)"]
    rows = []
    for r in res["verification"]:
        rows.append(
            [
                r["subset"],
                r["genuine"],
                r["impostor"],
                f"{r['auc']:.4f}",
                f"{r['tar@far=0.001']:.4f}" + ("" if r["far=0.001 resolvable"] else "*"),
                f"{r['tar@far=0.0001']:.4f}" + ("" if r["far=0.0001 resolvable"] else "*"),
                f"{r['tar@0.9']:.4f}",
                f"{r['far@0.9']:.2e}",
            ]
        )
    out.append(
        table(
            [
                "subset",
                "genuine",
                "impostor",
                "AUC",
                "TAR@FAR1e-3",
                "TAR@FAR1e-4",
                "TAR@0.9",
                "FAR@0.9",
            ],
            rows,
        )
    )
    if "skipped" in res.get("recognizers", {}):
        out += ["", f"Recognizers side by side: skipped, {res['recognizers']['skipped']}"]
    elif "recognizers" in res:
        out += ["", recognizers.format_comparison(res["recognizers"])]
    i = res["identification"]
    out += ["", "1:N open set (one enrolled image per identity for half the identities)"]
    out.append(
        table(
            [
                "gallery",
                "known probes",
                "unknown probes",
                "rank-1",
                "TPIR@0.9",
                "rejection@0.9",
                "false accept@0.9",
            ],
            [
                [
                    i["gallery"],
                    i["known_probes"],
                    i["unknown_probes"],
                    f"{i['rank1']:.4f}",
                    f"{i['tpir']:.4f}",
                    f"{i['rejection']:.4f}",
                    f"{i['false_accept']:.4f}",
                ]
            ],
        )
    )
    out += [
        "",
        "Detection (dlib hand-labelled boxes; CompreFace nose points; group = both sets of "
        "group photos, boxes at IoU 0.4)",
    ]
    cols = [
        "detector",
        "dlib recall@0.4",
        "dlib precision@0.4",
        "dlib recall@0.5",
        "dlib precision@0.5",
        "nose recall",
        "nose precision",
        "nose images exact",
        "group recall",
        "group faces",
        "ms/image",
    ]
    out.append(table(cols, [[r[c] for c in cols] for r in res["detection"]]))
    out += ["", "Faces found on images with labelled counts"]
    cc = list(res["detection_counts"][0].keys())
    out.append(table(cc, [[r[c] for c in cc] for r in res["detection_counts"]]))
    if "landmarks106" in res:
        out += ["", landmarks106_eval.format_table(res["landmarks106"])]
    if res.get("_attributes_table"):
        out += ["", "Attributes", res["_attributes_table"]]
    elif "attributes" in res:
        out += ["", "Attributes: edge.evaluation.attributes not available"]
    if "age_gender_models" in res:
        out += ["", attr_eval.format_comparison(res["age_gender_models"])]
    if "occlusion" in res:
        out += ["", "Occlusion", occlusion_eval.format_table(res["occlusion"])]
    return "\n".join(out)


def run(settings: Settings, args: argparse.Namespace) -> int:
    data = testdata_dir(args.data, "eval")
    if not (data / "SOURCES.json").is_file():
        print(f"edge-face eval: {data} has no SOURCES.json (use --data)", file=sys.stderr)
        return 2
    models = Models.load(settings)  # the models the service serves, by the same rule
    models.pipeline.warmup()
    res = evaluate(
        models.pipeline, data, attributes=not args.no_attributes, progress=not args.quiet
    )
    print(format_report(res))
    if args.out:
        clean = {k: v for k, v in res.items() if not k.startswith("_")}
        args.out.write_text(json.dumps(clean, indent=1, default=float) + "\n", encoding="utf-8")
        print(f"\nwrote {args.out}")
    return 0
