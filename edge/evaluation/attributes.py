"""Attribute accuracy on the labelled shared test images: age MAE, gender accuracy, emotions.

Age/gender: `annotations/utkface` with `annotations/utkface_labels.json`, reported for all ages
and for 18-75 (the range the age/gender model card claims). Emotions: `annotations/emotion`
with `emotion_labels.json` (one face each), top-1 and top-2 hits in the API vocabulary.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.errors import EdgeError
from edge.vision.types import DetailFlags

AGE_VALID = (18, 75)  # age-gender-recognition-retail-0013 model card
# emotion_labels.json vocabulary -> API emotion names
LABEL_TO_API = {
    "angry": "angry",
    "disgusted": "disgusted",
    "fearful": "scared",
    "happy": "happy",
    "neutral": "calm",
    "sad": "sad",
    "surprised": "surprised",
}
FLAGS = DetailFlags(attributes=True)


def _attributes(pipeline: Any, path: Path) -> tuple[dict[str, Any] | None, float]:
    """The largest face's attributes block (None when no usable face) and its latency."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        return None, 0.0
    t0 = time.perf_counter()
    try:
        res = pipeline.analyze_largest(bgr, flags=FLAGS, embed=False)
    except EdgeError:  # 223 no face / 224 too small
        return None, 0.0
    ms = (time.perf_counter() - t0) * 1000.0
    attrs = res.details.get("attributes")
    return (attrs if isinstance(attrs, dict) else None), ms


def _labels(testdata: Path, name: str) -> dict[str, Any]:
    return json.loads((testdata / "annotations" / name).read_text())["labels"]


def evaluate(pipeline: Any, testdata: Path) -> dict[str, Any]:
    """Run the pipeline on every labelled image; see `format_table` for the fields."""
    rows: list[dict[str, Any]] = []
    latencies: list[float] = []
    missed_ag: list[str] = []
    for rel, lab in sorted(_labels(testdata, "utkface_labels.json").items()):
        attrs, ms = _attributes(pipeline, testdata / rel)
        if attrs is None or "age" not in attrs:
            missed_ag.append(rel)
            continue
        latencies.append(ms)
        rows.append(
            {
                "file": rel,
                "age": int(lab["age"]),
                "age_pred": int(attrs["age"]["value"]),
                "gender": lab["gender"],
                "gender_pred": attrs["gender"]["value"],
            }
        )

    def age_gender(sel: list[dict[str, Any]]) -> dict[str, Any]:
        if not sel:
            return {"n": 0, "age_mae": None, "gender_accuracy": None}
        err = [abs(r["age_pred"] - r["age"]) for r in sel]
        hits = [r["gender_pred"] == r["gender"] for r in sel]
        return {
            "n": len(sel),
            "age_mae": round(float(np.mean(err)), 2),
            "age_median_error": round(float(np.median(err)), 2),
            "gender_accuracy": round(float(np.mean(hits)), 4),
        }

    lo, hi = AGE_VALID
    emo_rows: list[dict[str, Any]] = []
    missed_emo: list[str] = []
    for rel, lab in sorted(_labels(testdata, "emotion_labels.json").items()):
        attrs, ms = _attributes(pipeline, testdata / rel)
        if attrs is None or "emotions" not in attrs:
            missed_emo.append(rel)
            continue
        latencies.append(ms)
        ranked = sorted(attrs["emotions"], key=lambda e: -float(e["certainty"]))
        truth = LABEL_TO_API[lab]
        emo_rows.append(
            {
                "file": rel,
                "label": truth,
                "top1": ranked[0]["value"],
                "top1_certainty": float(ranked[0]["certainty"]),
                "hit1": ranked[0]["value"] == truth,
                "hit2": truth in (ranked[0]["value"], ranked[1]["value"]),
            }
        )
    return {
        "age_gender": {
            "all_ages": age_gender(rows),
            "ages_18_75": age_gender([r for r in rows if lo <= r["age"] <= hi]),
            "missed": missed_ag,
            "rows": rows,
        },
        "emotions": {
            "n": len(emo_rows),
            "top1_hits": sum(r["hit1"] for r in emo_rows),
            "top2_hits": sum(r["hit2"] for r in emo_rows),
            "missed": missed_emo,
            "rows": emo_rows,
        },
        "latency_ms": {
            "n": len(latencies),
            "p50": round(float(np.percentile(latencies, 50)), 1) if latencies else None,
            "p95": round(float(np.percentile(latencies, 95)), 1) if latencies else None,
        },
    }


def format_table(result: dict[str, Any]) -> str:
    """Plain-text summary as printed by `edge-face eval`."""
    ag = result["age_gender"]
    em = result["emotions"]
    lat = result["latency_ms"]
    lines = [
        "Attributes (age/gender: annotations/utkface; emotions: annotations/emotion)",
        f"{'subset':<12} {'n':>4} {'age MAE':>8} {'age med':>8} {'gender acc':>11}",
    ]
    for name, key in (("all ages", "all_ages"), ("ages 18-75", "ages_18_75")):
        s = ag[key]
        mae = "-" if s["age_mae"] is None else f"{s['age_mae']:.2f}"
        med = "-" if s.get("age_median_error") is None else f"{s['age_median_error']:.2f}"
        acc = "-" if s["gender_accuracy"] is None else f"{s['gender_accuracy']:.1%}"
        lines.append(f"{name:<12} {s['n']:>4} {mae:>8} {med:>8} {acc:>11}")
    if ag["missed"]:
        lines.append(f"no usable face: {len(ag['missed'])} utkface image(s)")
    lines.append("")
    lines.append(f"emotions: top-1 {em['top1_hits']}/{em['n']}, top-2 {em['top2_hits']}/{em['n']}")
    for r in em["rows"]:
        mark = "ok" if r["hit1"] else "--"
        lines.append(
            f"  {mark} {Path(r['file']).name:<28} label {r['label']:<10} "
            f"got {r['top1']:<10} ({r['top1_certainty']:.2f})"
        )
    if em["missed"]:
        lines.append(f"no usable face: {len(em['missed'])} emotion image(s)")
    if lat["n"]:
        lines.append(
            f"attributes latency per face (detection included): p50 {lat['p50']} ms, "
            f"p95 {lat['p95']} ms (n={lat['n']})"
        )
    return "\n".join(lines)
