"""`edge-face bench pipeline`: end-to-end latency of the analysis path vs InsightFace.

Inputs are real one-face photos cropped around the face to 4:3 and resized to 640x480 JPEGs,
the size a camera or phone client typically sends. Timed per stage (decode, detect, align,
embed, details) and end to end through `FacePipeline.analyze_largest`, for the search path
(no details) and with all five detail blocks, on OpenVINO and onnxruntime. In the same run
InsightFace's `FaceAnalysis` (SCRFD-2.5G + the same MobileFaceNet file) processes the same
JPEGs as the baseline; the ratio compares p50 of the search paths.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from benchmarks.stats import p, peak_rss_mb, table, vm_hwm_mb
from edge.config import Backend, Settings, testdata_dir
from edge.engine import Models
from edge.evaluation.verification import identity_items
from edge.imaging.decode import decode_bytes
from edge.runtime.backends import open_session
from edge.vision.align import align_face
from edge.vision.detection import ScrfdDetector, build_detectors
from edge.vision.types import DetailFlags

W, H = 640, 480
SCRFD_FILE = "scrfd_2.5g_bnkps.onnx"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data", type=Path, default=None, help="labelled test folder (default: $EDGE_TESTDATA)"
    )
    parser.add_argument("--runs", type=int, default=60, help="timed runs per configuration")
    parser.add_argument("--warmup", type=int, default=10, help="untimed runs first")
    parser.add_argument("--images", type=int, default=12, help="distinct photos cycled through")
    parser.add_argument("--no-insightface", action="store_true", help="skip the baseline")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON")


def make_inputs(settings: Settings, data: Path, count: int) -> list[bytes]:
    """640x480 JPEGs of single-face photos, cropped 4:3 around the face and resized."""
    fast, slow = build_detectors(Models.load(settings).registry, settings)
    checks = [fast, slow]
    scrfd = settings.model_dir / SCRFD_FILE
    if scrfd.is_file():  # the baseline's detector must see the same single face
        sess = open_session(scrfd, "bench_scrfd", "onnxruntime")
        checks.append(ScrfdDetector(sess, score=0.5, iou=0.4, input_long=640))
    out: list[bytes] = []
    for s in identity_items(data):
        if s.kind != "photo":
            continue
        img = cv2.imread(str(data / s.file), cv2.IMREAD_COLOR)
        if img is None:
            continue
        faces = slow.detect(img)
        if len(faces) != 1:
            continue
        f = faces[0]
        ih, iw = img.shape[:2]
        # Largest 4:3 window that fits the image, centred on the face as far as possible.
        cw = min(iw, ih * W // H)
        ch = cw * H // W
        cx, cy = (f.box[0] + f.box[2]) / 2, (f.box[1] + f.box[3]) / 2
        x0 = int(np.clip(cx - cw / 2, 0, iw - cw))
        y0 = int(np.clip(cy - ch / 2, 0, ih - ch))
        crop = cv2.resize(img[y0 : y0 + ch, x0 : x0 + cw], (W, H), interpolation=cv2.INTER_AREA)
        ok, buf = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, 90])
        if ok and all(len(d.detect(crop)) == 1 for d in checks):
            out.append(buf.tobytes())
        if len(out) >= count:
            break
    return out


def _timed(
    stages: dict[str, Callable[[Any], Any]], inputs: list[Any], runs: int, warmup: int
) -> dict[str, np.ndarray]:
    """Run the stage chain on each input in turn; ms per stage and for the whole chain."""
    names = list(stages)
    ms = {n: np.empty(runs) for n in [*names, "total"]}
    for i in range(warmup + runs):
        x: Any = inputs[i % len(inputs)]
        t_start = time.perf_counter()
        for n in names:
            t0 = time.perf_counter()
            x = stages[n](x)
            if i >= warmup:
                ms[n][i - warmup] = (time.perf_counter() - t0) * 1000
        if i >= warmup:
            ms["total"][i - warmup] = (time.perf_counter() - t_start) * 1000
    return ms


def _ours(
    settings: Settings, backend: Backend, inputs: list[bytes], runs: int, warmup: int
) -> dict[str, dict[str, np.ndarray]]:
    # Each backend is its own registry (own sessions), loaded by the service's rule.
    s = settings.model_copy(
        update={"models": settings.models.model_copy(update={"backend": backend})}
    )
    pipe = Models.load(s).pipeline
    pipe.warmup()
    fast, _ = build_detectors(pipe.registry, s)
    emb = pipe.embedder
    all_flags = DetailFlags.all()
    state: dict[str, Any] = {}

    def detect(dec: Any) -> Any:
        state["bgr"] = dec.bgr
        return max(fast.detect(dec.bgr), key=lambda f: f.area)

    def align(face: Any) -> Any:
        state["face"] = face
        return align_face(state["bgr"], face.kps)

    def details(_: Any) -> Any:
        return pipe.details.analyze(state["bgr"], state["face"], all_flags)

    staged: dict[str, Callable[[Any], Any]] = {
        "decode": decode_bytes,
        "detect": detect,
        "align": align,
        "embed": emb.embed,
    }
    out = {
        "stages": _timed(staged, inputs, runs, warmup),
        "stages+details": _timed({**staged, "details": details}, inputs, runs, warmup),
        "search": _timed(
            {"analyze_largest": lambda b: pipe.analyze_largest(decode_bytes(b))},
            inputs,
            runs,
            warmup,
        ),
        "all details": _timed(
            {"analyze_largest": lambda b: pipe.analyze_largest(decode_bytes(b), flags=all_flags)},
            inputs,
            runs,
            warmup,
        ),
    }
    return out


def _insightface(
    settings: Settings, inputs: list[bytes], runs: int, warmup: int
) -> tuple[dict[str, np.ndarray] | None, str]:
    """InsightFace FaceAnalysis with SCRFD-2.5G + MobileFaceNet from a temporary model root."""
    try:
        from insightface.app import FaceAnalysis
    except ImportError:
        return None, "insightface not installed (pip install edge-face[bench])"
    scrfd = settings.model_dir / SCRFD_FILE
    rec = Models.load(settings).registry.path("embedding")
    if not scrfd.is_file():
        return None, f"{scrfd.name} not installed (research-nc pack)"
    root = Path(tempfile.mkdtemp(prefix="edge-bench-if-"))
    pack = root / "models" / "edge_bench"
    pack.mkdir(parents=True)
    # model_zoo routes by graph shape: >= 5 outputs -> detector, 112x112 input -> recognition.
    os.symlink(scrfd, pack / "det_scrfd_2.5g.onnx")
    os.symlink(rec, pack / "w_mobilefacenet.onnx")
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):  # insightface prints per model loaded
        app = FaceAnalysis(
            name="edge_bench",
            root=str(root),
            allowed_modules=["detection", "recognition"],
            providers=["CPUExecutionProvider"],
        )
        app.prepare(ctx_id=-1, det_size=(640, 640))
    det, recm = app.det_model, app.models["recognition"]
    state: dict[str, Any] = {}

    def decode(b: bytes) -> np.ndarray:
        img = cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_COLOR)
        if img is None:
            raise ValueError("a benchmark input does not decode as JPEG")
        return img

    def detect(img: np.ndarray) -> Any:
        state["img"] = img
        bboxes, kpss = det.detect(img, max_num=0, metric="default")
        i = int(np.argmax((bboxes[:, 2] - bboxes[:, 0]) * (bboxes[:, 3] - bboxes[:, 1])))
        return kpss[i]

    def align_embed(kps: np.ndarray) -> np.ndarray:
        from insightface.utils import face_align

        crop = face_align.norm_crop(state["img"], landmark=kps, image_size=112)
        return np.asarray(recm.get_feat(crop)).ravel()

    stages = _timed(
        {"decode": decode, "detect": detect, "align+embed": align_embed}, inputs, runs, warmup
    )
    app_ms = _timed({"FaceAnalysis.get": lambda b: app.get(decode(b))}, inputs, runs, warmup)
    stages["FaceAnalysis.get (end to end)"] = app_ms["total"]
    return stages, "ok"


def _insightface_child(
    settings: Settings, inputs: list[bytes], runs: int, warmup: int
) -> tuple[dict[str, np.ndarray] | None, str, float]:
    """Runs in its own process so that its peak RSS is its own."""
    stages, why = _insightface(settings, inputs, runs, warmup)
    return stages, why, vm_hwm_mb()


def run(settings: Settings, args: argparse.Namespace) -> int:
    inputs = make_inputs(settings, testdata_dir(args.data, "bench pipeline"), args.images)
    if not inputs:
        print("edge-face bench pipeline: no usable one-face photos in --data", file=sys.stderr)
        return 2
    print(
        f"bench pipeline: {len(inputs)} real one-face photos as {W}x{H} JPEGs, "
        f"{args.runs} timed runs after {args.warmup} warm-up, ms; cpu count {os.cpu_count()}"
    )
    rows: list[list[object]] = []
    results: dict[str, Any] = {}
    p50: dict[str, float] = {}

    def record(key: str, label: Sequence[object], ms: np.ndarray) -> None:
        """One table row and one JSON entry with the same p50/p95."""
        rows.append([*label, p(ms, 50), p(ms, 95)])
        results[key] = {"p50": p(ms, 50), "p95": p(ms, 95)}

    for backend in ("openvino", "onnxruntime"):
        res = _ours(settings, backend, inputs, args.runs, args.warmup)
        for cfg, ms in res.items():
            for stage, v in ms.items():
                if cfg in ("search", "all details") and stage != "total":
                    continue
                record(f"ours/{backend}/{cfg}/{stage}", [f"ours/{backend}", cfg, stage], v)
            p50[f"{backend}/{cfg}"] = p(ms["total"], 50)
        if backend == "openvino":
            rss_ours = vm_hwm_mb()
    # Context for the ratio: the baseline's detector model through our wrapper on each runtime.
    scrfd = settings.model_dir / SCRFD_FILE
    if scrfd.is_file():
        frames = [decode_bytes(b).bgr for b in inputs]
        for backend in ("openvino", "onnxruntime"):
            det = ScrfdDetector(open_session(scrfd, "bench_scrfd", backend), 0.5, 0.4, 640)
            det_ms = _timed({"detect": det.detect}, frames, args.runs, args.warmup)["detect"]
            label = [f"ours/{backend}", "SCRFD-2.5G@640", "detect"]
            record(f"ours/{backend}/scrfd/detect", label, det_ms)
    theirs: dict[str, np.ndarray] | None = None
    why, rss_theirs = "skipped (--no-insightface)", float("nan")
    if not args.no_insightface:
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(1) as pool:
            theirs, why, rss_theirs = pool.apply(
                _insightface_child, (settings, inputs, args.runs, args.warmup)
            )
    if theirs is not None:
        for stage, v in theirs.items():
            record(f"insightface/{stage}", ["insightface/ort", "search", stage], v)
    print(table(["runtime", "path", "stage", "p50", "p95"], rows))
    print()
    print(
        f"search path p50: ours/openvino {p50['openvino/search']:.2f} ms, "
        f"ours/onnxruntime {p50['onnxruntime/search']:.2f} ms (target <= 15 ms)"
    )
    print(
        f"all details p50: ours/openvino {p50['openvino/all details']:.2f} ms, "
        f"ours/onnxruntime {p50['onnxruntime/all details']:.2f} ms (target <= 45 ms)"
    )
    if theirs is not None:
        base = p(theirs["total"], 50)
        e2e = p(theirs["FaceAnalysis.get (end to end)"], 50)
        results["ratio"] = base / p50["openvino/search"]
        print(
            f"InsightFace baseline (decode + SCRFD-2.5G@640 + norm_crop + MobileFaceNet) p50 "
            f"{base:.2f} ms; FaceAnalysis.get end to end {e2e:.2f} ms"
        )
        print(
            f"speed-up ours/openvino vs InsightFace (search path p50): "
            f"{base / p50['openvino/search']:.2f}x (target >= 2x); "
            f"ours/onnxruntime: {base / p50['onnxruntime/search']:.2f}x"
        )
    else:
        print(f"InsightFace baseline: {why}")
    print(
        f"peak RSS: ours/openvino (all models loaded) {rss_ours:.0f} MB; ours, both backends "
        f"{peak_rss_mb():.0f} MB; InsightFace process {rss_theirs:.0f} MB"
    )
    print(f"load average {os.getloadavg()[0]:.2f} (machine shared: figures are upper bounds)")
    if args.out:
        args.out.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    return 0
