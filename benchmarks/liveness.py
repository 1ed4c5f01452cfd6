"""`edge-face bench liveness`: cost of the liveness stage and of the full-frame path.

Measures, in one process and one run:
- the liveness stage alone per face (crop + both models + fusion + quality gates), per
  backend, p50/p95;
- a naive baseline: the two models through onnxruntime with default session options, each
  crop prepared separately, softmax averaged (what a straight port of the upstream demo
  does); the ratio baseline/ours says what the engineering bought;
- the full-frame path on 640x480 JPEG frames: decode -> FacePipeline.analyze_largest
  (fast detector, slow if unsure; no embedding) -> liveness, p50/p95 and frames/s;
- peak RSS of the process.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from benchmarks.stats import p, peak_rss_mb, table
from edge.config import Settings, testdata_dir
from edge.engine import Models
from edge.evaluation.liveness import find_face, load_samples
from edge.runtime.registry import ModelRegistry
from edge.vision.liveness import LivenessScorer, minifas_crop
from edge.vision.types import Face

BASELINE = "baseline: 2 models, ort defaults, naive"
FULL = "full frame 640x480: decode+detect+liveness"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="folder with live/ spoof/ (default: $EDGE_TESTDATA/liveness)",
    )
    parser.add_argument("--runs", type=int, default=200, help="timed calls per measurement")
    parser.add_argument("--out", type=Path, help="write the results as JSON")


def _frames(data: Path) -> list[tuple[np.ndarray, bytes]]:
    """640x480 frames (letterboxed full-frame test photos) and their JPEG bytes."""
    out = []
    for s in load_samples(data):
        bgr = cv2.imread(str(s.path), cv2.IMREAD_COLOR)
        if bgr is None or max(bgr.shape[:2]) < 480:  # tight crops are not camera frames
            continue
        scale = min(640 / bgr.shape[1], 480 / bgr.shape[0])
        small = cv2.resize(bgr, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        frame = np.zeros((480, 640, 3), np.uint8)
        y0, x0 = (480 - small.shape[0]) // 2, (640 - small.shape[1]) // 2
        frame[y0 : y0 + small.shape[0], x0 : x0 + small.shape[1]] = small
        ok, jpg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 90])
        if ok:
            out.append((frame, jpg.tobytes()))
    return out


def _cycle(items: list[Any]) -> Callable[[], Any]:
    state = {"i": 0}

    def nxt() -> Any:
        item = items[state["i"] % len(items)]
        state["i"] += 1
        return item

    return nxt


class NaiveBaseline:
    """Upstream-demo style: default onnxruntime sessions, one model after the other."""

    def __init__(self, registry: ModelRegistry, scorer: LivenessScorer) -> None:
        import onnxruntime as ort

        self.scorer = scorer  # same crop boxes as ours: the comparison is about the runtime
        self.specs = [m for m in scorer.params.models if m.kind == "minifasnet"]
        self.sessions = [
            ort.InferenceSession(str(registry.path(m.role)), providers=["CPUExecutionProvider"])
            for m in self.specs
        ]

    def __call__(self, bgr: np.ndarray, face: Face) -> float:
        probs = []
        for spec, sess in zip(self.specs, self.sessions, strict=True):
            box = self.scorer.crop_box(spec, face)
            patch = minifas_crop(bgr, box, spec.scale, spec.size, spec.context)
            x = np.expand_dims(patch.transpose(2, 0, 1), 0).astype(np.float32)
            z = sess.run(None, {sess.get_inputs()[0].name: x})[0][0]
            e = np.exp(z - z.max())
            probs.append(e / e.sum())
        return float(1.0 - np.mean(probs, axis=0)[1])


def time_interleaved(
    calls: dict[str, Callable[[], object]], runs: int, block: int = 10, warmup: int = 5
) -> dict[str, np.ndarray]:
    """Milliseconds per call, measurements taken in turn, `block` calls at a time.

    On a shared box the load changes by the second; taking the measurements in turn exposes
    them all to the same load, so their ratios stay meaningful. Blocks rather than single
    calls, and the first call of each block untimed: onnxruntime's worker threads keep
    spinning for a while after a run, which would otherwise be billed to the next measurement.
    """
    for fn in calls.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in calls}
    while min(len(v) for v in samples.values()) < runs:
        for name, fn in calls.items():
            fn()
            for _ in range(block):
                t0 = time.perf_counter()
                fn()
                samples[name].append((time.perf_counter() - t0) * 1000.0)
    return {name: np.array(v[:runs]) for name, v in samples.items()}


def _scoring(
    scorer: LivenessScorer, nxt: Callable[[], tuple[np.ndarray, Face]]
) -> Callable[[], object]:
    """One timed call: score the next face with `scorer`."""
    return lambda: scorer.score(*nxt())


def run(settings: Settings, args: argparse.Namespace) -> int:
    data = testdata_dir(args.data, "bench liveness", "liveness")
    frames = _frames(data)
    if not frames:
        print(f"no full-frame images (>= 480 px) under {data}")
        return 2
    base = Models.load(settings)
    if base.liveness is None:
        print(f"pack {settings.models.pack} has no liveness models: nothing to measure")
        return 2
    ours, base_registry, pipeline = base.liveness, base.registry, base.pipeline
    faces = []
    for frame, _ in frames:
        face, _how = find_face(frame, pipeline)
        if face is not None:
            faces.append((frame, face))
    if not faces:
        print("no face found in the benchmark frames")
        return 2

    calls: dict[str, Callable[[], object]] = {}
    variants: dict[str, dict[str, object]] = {
        f"openvino ({settings.models.openvino_precision})": {"backend": "openvino"},
        "openvino (f32)": {"backend": "openvino", "openvino_precision": "f32"},
        "onnxruntime (cpu)": {"backend": "onnxruntime", "providers": ["cpu"]},
    }
    for name, override in variants.items():
        # Each backend variant is its own registry (own sessions), loaded by the same rule.
        models = settings.models.model_copy(update=override)
        s = settings.model_copy(update={"models": models})
        scorer = Models.load(s).liveness
        assert scorer is not None  # same pack as `base`, which has the roles
        scorer.warmup()
        calls[f"liveness stage / face, {name}"] = _scoring(scorer, _cycle(faces))

    ours.warmup()
    baseline = NaiveBaseline(base_registry, ours)
    nxt_b = _cycle(faces)
    calls[BASELINE] = lambda: baseline(*nxt_b())

    def detect(jpg: bytes) -> tuple[np.ndarray, Face]:
        bgr = cv2.imdecode(np.frombuffer(jpg, np.uint8), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError("a benchmark frame does not decode as JPEG")
        return bgr, pipeline.analyze_largest(bgr, embed=False).face  # as the endpoint does

    nxt_d, nxt_f = _cycle([j for _, j in frames]), _cycle([j for _, j in frames])
    calls["full frame 640x480: decode+detect"] = lambda: detect(nxt_d())
    calls[FULL] = lambda: ours.score(*detect(nxt_f())).spoof_score

    ms = time_interleaved(calls, args.runs)
    rows = [[k, p(v, 50), p(v, 95), 1000 / v.mean()] for k, v in ms.items()]
    print(table(["measurement", "p50 ms", "p95 ms", "per s"], rows))
    ours_name = f"liveness stage / face, {next(iter(variants))}"
    ratio = p(ms[BASELINE], 50) / p(ms[ours_name], 50)
    print(
        f"speed-up of the liveness stage vs baseline (p50, {next(iter(variants))}): {ratio:.2f}x;"
        f" {len(faces)} faces / {len(frames)} frames, {args.runs} interleaved rounds;"
        f" peak RSS {peak_rss_mb():.0f} MiB; load average {os.getloadavg()[0]:.1f}"
        f" on {os.cpu_count()} CPUs"
    )
    results: dict[str, Any] = {
        "runs": args.runs,
        "frames": len(frames),
        "timings": {k: {"p50": p(v, 50), "p95": p(v, 95)} for k, v in ms.items()},
        "fullFrame": {"p50": p(ms[FULL], 50), "p95": p(ms[FULL], 95)},
        "ratioBaselineOverOurs": ratio,
        "peakRssMiB": peak_rss_mb(),
    }
    if args.out:
        args.out.write_text(json.dumps(results, indent=1), encoding="utf-8")
    return 0
