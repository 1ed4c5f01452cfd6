"""Fit cosine -> similarityScore for a pack and write `edge/data/similarity_<pack>.json`.

Usage: python tools/calibrate_similarity.py [--data DIR] [--models DIR] [--pack NAME] [--write]

The map is piecewise linear through knots taken from measured operating points on every
genuine/impostor pair of the labelled identity folder (one embedding per image through the
product pipeline, fast path, exactly what `search`/`compare` do):

  cos -1                   -> 0
  cos at FAR 1e-2          -> 0.60
  cos at FAR 1e-3          -> 0.80
  cos at FAR 1e-4 (strict) -> 0.90   the recommended threshold: score >= 0.9 iff cos >= t
  cos "same photo" (p1)    -> 0.99   1st percentile of cos(photo, its JPEG-q75 0.8x copy)
  cos 1                    -> 1

A piecewise-linear monotone map keeps the 0.9 operating point exact (a logistic fit would
put it wherever the curve's tails fall) and reads as a table in the data file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edge.config import load_settings  # noqa: E402
from edge.engine import Models  # noqa: E402
from edge.evaluation.verification import (  # noqa: E402
    embed_samples,
    identity_items,
    pair_cosines,
    threshold_for_far,
)
from edge.vision.similarity import Calibration, Measured, calibration_path  # noqa: E402

DEFAULT_DATA = REPO.parent / "shared" / "testdata"
THRESHOLD = 0.9
KNOT_FARS = ((1e-2, 0.60), (1e-3, 0.80), (1e-4, THRESHOLD))
SAME_PHOTO_SCORE = 0.99


def _recompressed(bgr: np.ndarray) -> np.ndarray:
    small = cv2.resize(bgr, None, fx=0.8, fy=0.8, interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 75])
    assert ok
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--models", type=Path, default=None, help="model directory")
    ap.add_argument("--pack", default="default")
    ap.add_argument("--write", action="store_true", help="write edge/data/similarity_<pack>.json")
    args = ap.parse_args()

    overrides: dict[str, object] = {"models": {"pack": args.pack}}
    if args.models:
        overrides["models"] = {"pack": args.pack, "dir": args.models}
    settings = load_settings(None, **overrides)
    models = Models.load(settings)  # the pipeline the service runs, built by the same rule
    registry, pipe = models.registry, models.pipeline

    samples = embed_samples(
        lambda b: pipe.analyze_largest(b).embedding, args.data, identity_items(args.data)
    )
    failed = [s for s in samples if s.embedding is None]
    pairs = pair_cosines(samples)
    gen, imp = pairs.genuine, pairs.impostor
    print(
        f"images {len(samples)} (no usable face: {len(failed)}), "
        f"pairs genuine {len(gen)} impostor {len(imp)}"
    )

    # Same photo again after a resize + JPEG round trip: the practical "same photo twice".
    same = []
    for s in samples:
        if s.embedding is None:
            continue
        img = cv2.imread(str(args.data / s.file), cv2.IMREAD_COLOR)
        try:
            e2 = pipe.analyze_largest(_recompressed(img)).embedding
        except Exception:
            continue
        same.append(float(np.dot(s.embedding, e2)))
    c_same = float(np.percentile(same, 1))

    cos_knots, score_knots = [-1.0], [0.0]
    for far, sc in KNOT_FARS:
        t = threshold_for_far(imp, far)
        cos_knots.append(max(t, cos_knots[-1] + 1e-4))
        score_knots.append(sc)
    t_thr = cos_knots[-1]
    # The same-photo anchor must sit above the strict threshold to keep the map monotone.
    c_same_knot = min(max(c_same, t_thr + 1e-3), 1.0 - 1e-4)
    cos_knots += [c_same_knot, 1.0]
    score_knots += [SAME_PHOTO_SCORE, 1.0]
    # Measure on the knot exactly as stored (rounding stays above the margin of 1e-6).
    cos_knots = [round(c, 6) for c in cos_knots]
    t_thr = cos_knots[len(KNOT_FARS)]
    tar = float(np.mean(gen >= t_thr))
    far = float(np.mean(imp >= t_thr))
    # In-sample the 0.9 point is strict by construction; an identity-disjoint 2-fold check
    # says how far it holds on people the fit has not seen.
    names = sorted({s.identity for s in samples})
    halves = [set(names[0::2]), set(names[1::2])]
    heldout = []
    for k in (0, 1):
        fit = pair_cosines([s for s in samples if s.identity in halves[k]])
        test = pair_cosines([s for s in samples if s.identity in halves[1 - k]])
        t_k = threshold_for_far(fit.impostor, 1e-4)
        heldout.append(
            {
                "cos_threshold": round(t_k, 6),
                "far_other_half": float(np.mean(test.impostor >= t_k)),
                "tar_other_half": round(float(np.mean(test.genuine >= t_k)), 4),
                "impostor_pairs_other_half": len(test.impostor),
            }
        )
        print(
            f"held-out fold {k}: fit t={t_k:.4f} on {len(fit.impostor)} impostor pairs; other "
            f"half FAR {heldout[-1]['far_other_half']:.2e} TAR {heldout[-1]['tar_other_half']:.4f}"
        )
    cal = Calibration(
        pack=args.pack,
        embedding_file=registry.files("embedding")[0].file,
        knots_cos=cos_knots,
        knots_score=score_knots,
        recommended_threshold=THRESHOLD,
        cos_at_threshold=t_thr,
        measured=Measured(
            far=far,
            tar=round(tar, 4),
            pairs={"genuine": len(gen), "impostor": len(imp)},
            dataset=f"testdata faces_by_identity ({len(samples) - len(failed)} images)",
        ),
        same_photo_cos_p1=round(c_same, 4),
        same_photo_pairs=len(same),
        images_without_face=len(failed),
        heldout_2fold=heldout,
        fitted_by="tools/calibrate_similarity.py",
    )
    print(f"cos at FAR 1e-4: {t_thr:.4f}  TAR {tar:.4f}  FAR {far:.2e}")
    print(f"same-photo cos p1: {c_same:.4f} over {len(same)} images")
    print("knots:", list(zip(cal.knots_cos, cal.knots_score, strict=True)))
    if args.write:
        out = calibration_path(args.pack)
        out.write_text(cal.to_json(), encoding="utf-8")
        print(f"wrote {out.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
