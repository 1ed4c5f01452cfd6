"""Attribute accuracy on the labelled shared test images: age MAE, gender accuracy, emotions.

Age/gender: `annotations/utkface` with `annotations/utkface_labels.json`, reported for all ages
and for 18-75 (the range the age/gender model card claims). Emotions: `annotations/emotion`
with `emotion_labels.json` (one face each), top-1 and top-2 hits in the API vocabulary; and the
Yale face images whose recording condition (SOURCES.json source path) is an expression:
happy, sad, surprised, normal (= calm) and sleepy (eyes closed, tests the sleepy fusion).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.evaluation.report import p
from edge.runtime.backends import InferenceSession, open_session
from edge.vision.attributes import AgeGender, AgeGenderHse
from edge.vision.errors import FaceError
from edge.vision.landmarks import LandmarkModel, points_angle
from edge.vision.types import DetailFlags, FaceAttributes

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
# Yale recording conditions that name an expression -> API emotion
YALE_CONDITIONS = {
    "happy": "happy",
    "sad": "sad",
    "surprised": "surprised",
    "normal": "calm",
    "sleepy": "sleepy",
}
FLAGS = DetailFlags(attributes=True)


def _attributes(pipeline: Any, path: Path) -> tuple[FaceAttributes | None, float]:
    """The largest face's attributes block (None when no usable face) and its latency."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        return None, 0.0
    t0 = time.perf_counter()
    try:
        res = pipeline.analyze_largest(bgr, flags=FLAGS, embed=False)
    except FaceError:  # no face / too small
        return None, 0.0
    ms = (time.perf_counter() - t0) * 1000.0
    return res.details.attributes, ms


def _labels(testdata: Path, name: str) -> dict[str, Any]:
    labels: dict[str, Any] = json.loads((testdata / "annotations" / name).read_text())["labels"]
    return labels


def _emotion_items(testdata: Path) -> list[tuple[str, str]]:
    labels = _labels(testdata, "emotion_labels.json")
    return [(rel, LABEL_TO_API[lab]) for rel, lab in sorted(labels.items())]


def _yale_items(testdata: Path) -> list[tuple[str, str]]:
    files = json.loads((testdata / "SOURCES.json").read_text())["files"]
    out = []
    for f in files:
        cond = str(f.get("source_path", "")).rsplit(".", 1)[-1]
        if f["file"].startswith("faces_by_identity/yale_") and cond in YALE_CONDITIONS:
            out.append((f["file"], YALE_CONDITIONS[cond]))
    return sorted(out)


def _emotion_hits(
    pipeline: Any, testdata: Path, items: list[tuple[str, str]], latencies: list[float]
) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    missed: list[str] = []
    for rel, truth in items:
        attrs, ms = _attributes(pipeline, testdata / rel)
        if attrs is None or attrs.emotions is None:
            missed.append(rel)
            continue
        latencies.append(ms)
        ranked = sorted(attrs.emotions, key=lambda e: -e.certainty)
        rows.append(
            {
                "file": rel,
                "label": truth,
                "top1": ranked[0].value,
                "top1_certainty": ranked[0].certainty,
                "hit1": ranked[0].value == truth,
                "hit2": truth in (ranked[0].value, ranked[1].value),
            }
        )
    per_label: dict[str, list[int]] = {}
    for r in rows:
        hits = per_label.setdefault(r["label"], [0, 0])
        hits[0] += int(r["hit1"])
        hits[1] += 1
    return {
        "n": len(rows),
        "top1_hits": sum(r["hit1"] for r in rows),
        "top2_hits": sum(r["hit2"] for r in rows),
        "per_label": per_label,
        "missed": missed,
        "rows": rows,
    }


def evaluate(pipeline: Any, testdata: Path) -> dict[str, Any]:
    """Run the pipeline on every labelled image; see `format_table` for the fields."""
    rows: list[dict[str, Any]] = []
    latencies: list[float] = []
    missed_ag: list[str] = []
    for rel, lab in sorted(_labels(testdata, "utkface_labels.json").items()):
        attrs, ms = _attributes(pipeline, testdata / rel)
        if attrs is None or attrs.age is None or attrs.gender is None:
            missed_ag.append(rel)
            continue
        latencies.append(ms)
        rows.append(
            {
                "file": rel,
                "age": int(lab["age"]),
                "age_pred": attrs.age.value,
                "gender": lab["gender"],
                "gender_pred": attrs.gender.value,
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
    emotions = _emotion_hits(pipeline, testdata, _emotion_items(testdata), latencies)
    yale = _emotion_hits(pipeline, testdata, _yale_items(testdata), latencies)
    return {
        "age_gender": {
            "all_ages": age_gender(rows),
            "ages_18_75": age_gender([r for r in rows if lo <= r["age"] <= hi]),
            "missed": missed_ag,
            "rows": rows,
        },
        "emotions": emotions,
        "emotions_yale": yale,
        "latency_ms": {
            "n": len(latencies),
            "p50": round(p(np.asarray(latencies), 50), 1) if latencies else None,
            "p95": round(p(np.asarray(latencies), 95), 1) if latencies else None,
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
    ya = result["emotions_yale"]
    lines.append(
        f"emotions, Yale expression conditions: top-1 {ya['top1_hits']}/{ya['n']}, "
        f"top-2 {ya['top2_hits']}/{ya['n']}"
    )
    lines.append(
        "  per label (top-1 hits/n): "
        + ", ".join(f"{k} {v[0]}/{v[1]}" for k, v in sorted(ya["per_label"].items()))
    )
    if lat["n"]:
        lines.append(
            f"attributes latency per face (detection included): p50 {lat['p50']} ms, "
            f"p95 {lat['p95']} ms (n={lat['n']})"
        )
    return "\n".join(lines)


# Age/gender models side by side ------------------------------------------------------------
HSE_FILE = "agegender_hse_faceres_224.onnx"
AGE_GENDER_MODELS = ("retail-0013", "hse-faceres", "both (mean)")


class _FileSessions:
    """The pack's sessions, plus the HSE file opened from the model folder when the pack
    does not list it: the comparison must run whatever pack is loaded."""

    def __init__(self, registry: Any) -> None:
        self.registry = registry
        self._hse: InferenceSession | None = None

    def session(self, role: str) -> InferenceSession:
        if role != AgeGenderHse.ROLE or self.registry.has(role):
            sess: InferenceSession = self.registry.session(role)
            return sess
        if self._hse is None:
            cfg = self.registry.settings.models
            self._hse = open_session(
                self.registry.model_dir / HSE_FILE, role, self.registry.backend_for(role),
                providers=cfg.providers, device=cfg.openvino_device, threads=cfg.threads,
                precision=cfg.openvino_precision,
            )  # fmt: skip
        return self._hse


def _ag_summary(rows: list[dict[str, Any]], key: str) -> dict[str, Any]:
    err = [abs(r[key][0] - r["age"]) for r in rows]
    hits = [(r[key][1] >= 0.5) == (r["gender"] == "male") for r in rows]
    return {
        "n": len(rows),
        "age_mae": round(float(np.mean(err)), 2) if rows else None,
        "age_median_error": round(float(np.median(err)), 2) if rows else None,
        "gender_accuracy": round(float(np.mean(hits)), 4) if rows else None,
    }


def compare_age_gender(pipeline: Any, testdata: Path) -> dict[str, Any]:
    """Age MAE and gender accuracy of the Intel model, the HSE model and their mean, on the
    same detected faces (the largest face of each labelled UTKFace image).

    The mean averages the years and P(male). Ages are the models' unrounded outputs."""
    reg = pipeline.registry
    if not (reg.model_dir / HSE_FILE).is_file():
        return {
            "skipped": f"{HSE_FILE} is not installed in {reg.model_dir}: "
            "run `edge-face models fetch --pack research-nc`"
        }
    if not reg.has(AgeGender.ROLE):
        return {"skipped": f"pack {reg.pack_name} has no {AgeGender.ROLE} model"}
    sessions = _FileSessions(reg)
    intel, hse = AgeGender(reg), AgeGenderHse(sessions)
    marks = LandmarkModel(reg)
    rows: list[dict[str, Any]] = []
    for rel, lab in sorted(_labels(testdata, "utkface_labels.json").items()):
        bgr = cv2.imread(str(testdata / rel), cv2.IMREAD_COLOR)
        if bgr is None:
            continue
        try:
            face = pipeline.analyze_largest(bgr, embed=False).face
        except FaceError:
            continue
        a = intel.predict(bgr, face, points_angle(marks.predict(bgr, face)))
        b = hse.predict(bgr, face)
        both = ((a[0] + b[0]) / 2.0, (a[1] + b[1]) / 2.0)
        rows.append(
            {"file": rel, "age": int(lab["age"]), "gender": lab["gender"],
             AGE_GENDER_MODELS[0]: a, AGE_GENDER_MODELS[1]: b, AGE_GENDER_MODELS[2]: both}
        )  # fmt: skip
    lo, hi = AGE_VALID
    adult = [r for r in rows if lo <= r["age"] <= hi]
    return {
        "models": {
            m: {"all_ages": _ag_summary(rows, m), "ages_18_75": _ag_summary(adult, m)}
            for m in AGE_GENDER_MODELS
        },
        "shipped": {"pack": reg.pack_name, "uses": shipped_age_gender(reg)},
    }


def shipped_age_gender(registry: Any) -> str:
    """Which of AGE_GENDER_MODELS the pack's answers come from (see `DetailAnalyzer`)."""
    return AGE_GENDER_MODELS[1] if registry.has(AgeGenderHse.ROLE) else AGE_GENDER_MODELS[0]


def format_comparison(res: dict[str, Any]) -> str:
    """The side-by-side table printed by `edge-face eval`."""
    if "skipped" in res:
        return f"Age/gender models side by side: skipped, {res['skipped']}"
    lines = [
        "Age/gender models side by side (annotations/utkface, same detected faces; "
        f"pack {res['shipped']['pack']} answers with: {res['shipped']['uses']})",
        f"{'model':<13} {'n':>4} {'age MAE':>8} {'MAE 18-75':>10} {'gender acc':>11} "
        f"{'gender 18-75':>13}",
    ]
    for m, v in res["models"].items():
        a, b = v["all_ages"], v["ages_18_75"]

        def f(x: Any, pct: bool = False) -> str:
            return "-" if x is None else (f"{x:.1%}" if pct else f"{x:.2f}")

        lines.append(
            f"{m:<13} {a['n']:>4} {f(a['age_mae']):>8} {f(b['age_mae']):>10} "
            f"{f(a['gender_accuracy'], True):>11} {f(b['gender_accuracy'], True):>13}"
        )
    return "\n".join(lines)
