"""`edge-face eval liveness`: APCER / BPCER / ACER / ROC AUC of the passive liveness score.

Protocol (ISO/IEC 30107-3 vocabulary): an attack (spoof) accepted as live is an APCER error,
a live face rejected as spoof is a BPCER error; ACER is their mean. Decisions use the
recommended threshold of the pack (score >= threshold => spoof).

Faces are found as the endpoint finds them (FacePipeline.analyze_largest: fast detector,
then slow; largest face; 223 no face, 224 too small). Many
test images are tight face crops, which detectors often miss because the face fills the
frame; for those the detector is run again on a copy padded with a black border and the box
is mapped back, while the liveness crop is still taken from the original pixels (the border
must not leak into the models' context). Images where no face is found even then are
counted and listed, never dropped silently; they are not scored because the endpoint
would answer 223 (or 224) for them.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.config import Settings, testdata_dir
from edge.engine import Models
from edge.evaluation.liveness_common import (
    PAD_FRACTION,
    Sample,
    error_rates,
    find_face,
    load_samples,
    roc_auc,
)
from edge.vision.liveness import LivenessScorer
from edge.vision.pipeline import FacePipeline

TARGET_BPCER = 0.05

__all__ = [
    "PAD_FRACTION",
    "TARGET_BPCER",
    "Sample",
    "Scored",
    "add_arguments",
    "error_rates",
    "evaluate",
    "find_face",
    "format_table",
    "load_samples",
    "roc_auc",
    "run",
    "score_samples",
    "summarize",
    "threshold_for_bpcer",
]


# ------------------------------------------------------------------------------------------
# Metrics
# ------------------------------------------------------------------------------------------
def threshold_for_bpcer(live: np.ndarray, spoof: np.ndarray, target: float) -> float:
    """Lowest threshold whose BPCER <= target (so APCER is as low as that allows).

    At most floor(target * n_live) live scores may reach the threshold; it is put halfway
    between the first live score that must be rejected and the next higher score.
    """
    if not live.size:
        return float("nan")
    allowed = int(np.floor(target * len(live) + 1e-9))
    desc = np.sort(live)[::-1]
    if allowed >= len(desc):
        return float(min(desc.min(), spoof.min() if spoof.size else desc.min()))
    pivot = float(desc[allowed])  # this live score must stay below the threshold
    above = np.concatenate([live, spoof])
    above = above[above > pivot]
    return (pivot + float(above.min())) / 2 if above.size else float(np.nextafter(pivot, 2.0))


def summarize(live: np.ndarray, spoof: np.ndarray, threshold: float) -> dict[str, Any]:
    out: dict[str, Any] = {"samples": {"live": int(live.size), "spoof": int(spoof.size)}}
    out.update(error_rates(live, spoof, threshold))
    out["auc"] = roc_auc(live, spoof)
    return out


# ------------------------------------------------------------------------------------------
# Run
# ------------------------------------------------------------------------------------------
@dataclass
class Scored:
    file: str
    label: str
    source: str
    attack: str | None
    found: str  # direct | padded | none
    spoof_score: float | None = None
    per_model: dict[str, float] = field(default_factory=dict)
    reliable: bool | None = None
    conditions: list[str] = field(default_factory=list)


def score_samples(
    samples: Sequence[Sample],
    scorer: LivenessScorer,
    pipeline: FacePipeline,
    progress: Callable[[int, int], None] | None = None,
) -> list[Scored]:
    out = []
    for i, s in enumerate(samples):
        bgr = cv2.imread(str(s.path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f"cannot decode {s.path}")
        face, how = find_face(bgr, pipeline)
        rec = Scored(s.path.name, s.label, s.source, s.attack, how)
        if face is not None:
            r = scorer.score(bgr, face)
            rec.spoof_score = r.spoof_score
            rec.per_model = dict(r.per_model)
            rec.reliable = r.reliable
            rec.conditions = list(r.conditions)
        out.append(rec)
        if progress:
            progress(i + 1, len(samples))
    return out


def _arrays(rows: Sequence[Scored]) -> tuple[np.ndarray, np.ndarray]:
    live = np.array(
        [r.spoof_score for r in rows if r.label == "live" and r.spoof_score is not None]
    )
    spoof = np.array(
        [r.spoof_score for r in rows if r.label == "spoof" and r.spoof_score is not None]
    )
    return live.astype(np.float64), spoof.astype(np.float64)


def evaluate(rows: Sequence[Scored], threshold: float) -> dict[str, Any]:
    """All figures of the report from scored rows (pure: testable without models)."""
    live, spoof = _arrays(rows)
    overall = summarize(live, spoof, threshold)
    t5 = threshold_for_bpcer(live, spoof, TARGET_BPCER)
    at5 = error_rates(live, spoof, t5)
    per_source: dict[str, Any] = {}
    for src in sorted({r.source for r in rows}):
        sub = [r for r in rows if r.source == src]
        per_source[src] = summarize(*_arrays(sub), threshold)
    per_attack: dict[str, Any] = {}
    for att in sorted({r.attack for r in rows if r.label == "spoof" and r.attack}):
        sp = np.array(
            [r.spoof_score for r in rows if r.attack == att and r.spoof_score is not None]
        )
        per_attack[att] = {"samples": int(sp.size), "apcer": float(np.mean(sp < threshold))}
    found: dict[str, dict[str, int]] = defaultdict(
        lambda: {"direct": 0, "padded": 0, "none": 0, "too small": 0}
    )
    for r in rows:
        found[r.label][r.found] += 1
    unreliable = [r for r in rows if r.reliable is False]
    rel_rows = [r for r in rows if r.reliable]
    return {
        "threshold": threshold,
        "overall": overall,
        "thresholdForBpcer5": {"threshold": t5, **at5},
        "perSource": per_source,
        "perAttack": per_attack,
        "faceFound": dict(found),
        "notScored": [r.file for r in rows if r.spoof_score is None],
        "unreliable": {
            "count": len(unreliable),
            "reasons": dict(
                sorted(
                    {
                        c: sum(c in r.conditions for r in unreliable)
                        for r in unreliable
                        for c in r.conditions
                    }.items()
                )
            ),
            "reliableOnly": summarize(*_arrays(rel_rows), threshold),
        },
    }


def _pct(v: float) -> str:
    return "  n/a " if v != v else f"{100 * v:5.1f}%"


def format_table(report: dict[str, Any], measured: dict[str, Any] | None = None) -> str:
    lines = []
    thr = report["threshold"]
    lines.append(f"liveness evaluation (threshold {thr:g}: spoofScore >= {thr:g} => spoof)")
    lines.append(
        f"{'subset':44s} {'live':>5s} {'spoof':>5s} {'APCER':>7s} {'BPCER':>7s} "
        f"{'ACER':>7s} {'AUC':>6s}"
    )

    def row(name: str, m: dict[str, Any]) -> None:
        auc = m["auc"]
        lines.append(
            f"{name[:44]:44s} {m['samples']['live']:5d} {m['samples']['spoof']:5d} "
            f"{_pct(m['apcer']):>7s} {_pct(m['bpcer']):>7s} {_pct(m['acer']):>7s} "
            f"{'  n/a' if auc != auc else f'{auc:6.3f}'}"
        )

    row("all scored images", report["overall"])
    for src, m in report["perSource"].items():
        row(f"source {src}", m)
    row("reliable faces only", report["unreliable"]["reliableOnly"])
    t5 = report["thresholdForBpcer5"]
    lines.append(
        f"threshold for BPCER <= 5%: {t5['threshold']:.4f} -> APCER {_pct(t5['apcer'])}, "
        f"BPCER {_pct(t5['bpcer'])}, ACER {_pct(t5['acer'])}"
    )
    for att, m in report["perAttack"].items():
        lines.append(f"  attack {att[:60]}: {m['samples']} samples, APCER {_pct(m['apcer'])}")
    for label, c in sorted(report["faceFound"].items()):
        lines.append(
            f"faces found ({label}): {c['direct']} directly, {c['padded']} after padding, "
            f"{c['none']} not found, {c['too small']} too small (224)"
        )
    if report["notScored"]:
        lines.append(f"not scored (endpoint would answer 223/224): {report['notScored']}")
    u = report["unreliable"]
    lines.append(f"marked unreliable: {u['count']} {u['reasons']}")
    if measured and "cv" in measured:
        cv = measured["cv"]
        lines.append(
            f"NOTE: the fusion was fitted on this data; the honest figure is the "
            f"{cv.get('scheme', 'cross-validated')} estimate: APCER {_pct(cv['apcer'])}, "
            f"BPCER {_pct(cv['bpcer'])}, ACER {_pct(cv['acer'])}, AUC {cv['auc']:.3f}"
        )
    if measured and "worstSource" in measured:
        lines.append(
            f"NOTE: this data took part in choosing the operating point; the honest figure is "
            f"{measured.get('method', 'leave-one-source-out')}: APCER {_pct(measured['apcer'])}"
            f", BPCER {_pct(measured['bpcer'])}, ACER {_pct(measured['acer'])} "
            "(per source: edge-face eval liveness --loso)"
        )
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="folder with live/ spoof/ (default: $EDGE_TESTDATA/liveness)",
    )
    parser.add_argument("--out", type=Path, help="write the full report (JSON) here")
    parser.add_argument("--threshold", type=float, help="override the recommended threshold")
    parser.add_argument(
        "--loso",
        action="store_true",
        help="leave-one-source-out report over every source of the test data (the folder's"
        " parent: liveness/ plus faces_by_identity/ as bona fide control): the shipped"
        " operating point vs re-fits with and without the model-free attack cues (moire,"
        " black level, saturation, frame lines), each with its ship gates; reports the"
        " worst source",
    )
    parser.add_argument(
        "--attacks",
        default="screen,print",
        help="synthetic attacks made from the bona fide photos for --loso (comma list of"
        " screen, print; 'none' for real data only; default: %(default)s)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the synthetic attacks (default: 0)"
    )
    parser.add_argument(
        "--blinks",
        action="store_true",
        help="blink evidence on camera tracks assembled from the Yale photos (open, sleepy,"
        " and a synthetic print per subject): blink rate and track verdicts with and"
        " without the blink rule (camera option liveness_blink)",
    )
    parser.add_argument(
        "--rigid",
        action="store_true",
        help="rigid-motion evidence on camera tracks assembled from the test data (real"
        " video frames and poses vs photos turned like a sheet in the hand, and the replay"
        " video): share decided and track verdicts with and without the rule (camera option"
        " liveness_rigid)",
    )


def run(settings: Settings, args: argparse.Namespace) -> int:
    data = testdata_dir(args.data, "eval liveness", "liveness")
    try:
        samples = load_samples(data)
    except (FileNotFoundError, ValueError) as e:
        print(f"edge-face eval liveness: {e}", file=sys.stderr)
        return 2
    models = Models.load(settings)  # the models the service serves, by the same rule
    scorer = models.liveness
    if scorer is None:
        print(
            f"edge-face eval liveness: pack {settings.models.pack!r} has no liveness models; "
            "choose a pack that has them (models.pack)",
            file=sys.stderr,
        )
        return 2
    registry = models.registry
    if getattr(args, "blinks", False):
        from edge.evaluation.blinks import format_blinks, run_blinks
        from edge.vision.details import DetailAnalyzer

        rep = run_blinks(data.parent, models.pipeline, DetailAnalyzer(registry), scorer, args.seed)
        print(format_blinks(rep["kinds"]))
        if args.out:
            args.out.write_text(json.dumps(rep, indent=1), encoding="utf-8")
        return 0
    if getattr(args, "rigid", False):
        from edge.evaluation.rigid import format_rigid, run_rigid, write
        from edge.vision.details import DetailAnalyzer

        try:
            rep = run_rigid(
                data.parent, models.pipeline, DetailAnalyzer(registry).mesh, scorer, args.seed
            )
        except FileNotFoundError as e:
            print(f"edge-face eval liveness: {e}", file=sys.stderr)
            return 2
        print(format_rigid(rep["kinds"]))
        if args.out:
            write(rep, args.out)
        return 0
    if getattr(args, "loso", False):
        from edge.evaluation.liveness_loso import run_loso

        return run_loso(data.parent, scorer, models.pipeline, args)
    rows = score_samples(samples, scorer, models.pipeline)
    threshold = args.threshold if args.threshold is not None else scorer.params.threshold
    report = evaluate(rows, threshold)
    report["pack"] = registry.pack_name
    report["measuredInModelInfo"] = scorer.params.measured
    print(format_table(report, scorer.params.measured))
    if args.out:
        report["rows"] = [asdict(r) for r in rows]
        args.out.write_text(json.dumps(report, indent=1), encoding="utf-8")
        print(f"report written to {args.out}", file=sys.stderr)
    return 0
