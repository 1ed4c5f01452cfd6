"""`edge-face bench models`: raw latency of every model of the pack on each backend.

Prints p50/p95 over N runs after warm-up, the OpenVINO/onnxruntime p50 ratio per model
(< 1 means OpenVINO is faster) and the process's peak RSS.
"""

from __future__ import annotations

import argparse
import json
from functools import partial
from pathlib import Path

import cv2
import psutil

from benchmarks.stats import p, peak_rss_mb, table, time_calls
from edge.config import Settings, testdata_dir
from edge.engine import Models
from edge.runtime.backends import BackendError, open_session
from edge.runtime.probe import probe_inputs

#: the input photo when --image is not given, inside $EDGE_TESTDATA
DEFAULT_IMAGE = "multi_face/fr_obama_and_biden.jpg"
#: reference files kept for provenance, never executed
SKIP_ROLES = {"liveness_v2_reference", "liveness_v1se_reference", "emotion_reference"}


def add_arguments(p_: argparse.ArgumentParser) -> None:
    p_.add_argument("--runs", type=int, default=50, help="timed runs per model (default 50)")
    p_.add_argument(
        "--image",
        type=Path,
        default=None,
        help=f"real photo used as input (default: $EDGE_TESTDATA/{DEFAULT_IMAGE})",
    )
    p_.add_argument("--pack", help="model pack (default from config)")
    p_.add_argument("--threads", type=int, default=0, help="intra-op threads (0 = default)")
    p_.add_argument("--out", type=Path, help="write the results as JSON")


def run(settings: Settings, args: argparse.Namespace) -> int:
    if args.pack:
        settings = settings.model_copy(
            update={"models": settings.models.model_copy(update={"pack": args.pack})}
        )
    reg = Models.load(settings).registry  # the pack's files; sessions are opened per backend below
    image = testdata_dir(args.image, "bench models", DEFAULT_IMAGE, flag="--image FILE")
    bgr = cv2.imread(str(image))
    if bgr is None:
        print(f"cannot read {image}")
        return 2
    proc = psutil.Process()
    rows, results = [], []
    for role in sorted(reg.pack.roles):
        path = reg.path(role)
        if not path.is_file():
            print(f"{role}: {path.name} not installed; run `edge-face models fetch`")
            return 1
        timings: dict[str, tuple[float, float]] = {}
        for backend in ("openvino", "onnxruntime"):
            if backend == "onnxruntime" and path.suffix != ".onnx":
                continue
            try:
                sess = open_session(path, role, backend, threads=args.threads, providers=["cpu"])
            except BackendError as e:
                print(f"{role}/{backend}: {e}")
                continue
            feeds = probe_inputs(sess.info, bgr)
            ms = time_calls(partial(sess.run, feeds), args.runs)
            timings[backend] = (p(ms, 50), p(ms, 95))
        ov, ort = timings.get("openvino"), timings.get("onnxruntime")
        ratio = ov[0] / ort[0] if ov and ort else float("nan")
        shape = "x".join(str(d) for d in sess.info.inputs[0].shape)
        rows.append(
            [
                role,
                shape,
                ov[0] if ov else "-",
                ov[1] if ov else "-",
                ort[0] if ort else "-",
                ort[1] if ort else "-",
                f"{ratio:.2f}" if ov and ort else "n/a (OpenVINO only)",
            ]
        )
        results.append({"role": role, "file": path.name, "openvino": ov, "onnxruntime": ort})
    print(f"per-model latency, {args.runs} runs after warm-up, ms (input: {image.name})")
    print(
        table(
            ["role", "input", "OV p50", "OV p95", "ORT p50", "ORT p95", "OV/ORT p50"],
            rows,
        )
    )
    rss = proc.memory_info().rss / 2**20
    print(f"RSS now {rss:.0f} MB, peak RSS {peak_rss_mb():.0f} MB (both backends, all models)")
    if args.out:
        args.out.write_text(json.dumps({"runs": args.runs, "models": results}, indent=1))
    return 0
