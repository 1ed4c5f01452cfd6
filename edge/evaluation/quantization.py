"""INT8 calibration and accuracy gates, measured with the product's own wrappers and metrics.

Calibration feeds are captured, not re-implemented: each FP session is wrapped in a tee that
records what the product's wrapper (detector, `Embedder`, `MaskDetector`) feeds it, so the
quantizer sees exactly the tensors the service produces. The gates compare FP and INT8 on the
labelled test folder with `edge.evaluation.verification` / `faces.detection`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.config import Settings
from edge.engine import Models
from edge.evaluation.faces import detection, verification
from edge.evaluation.report import p as percentile
from edge.evaluation.report import table
from edge.evaluation.verification import (
    Pairs,
    Progress,
    Sample,
    identity_items,
    pair_cosines,
)
from edge.runtime.backends import InferenceSession, open_session
from edge.runtime.quantize import (
    QUANTIZABLE_ROLES,
    GateCheck,
    file_sha256,
    new_sidecar,
    quantize_feeds,
    save_ir,
    write_sidecar,
)
from edge.vision.align import align_face
from edge.vision.attributes import MaskDetector
from edge.vision.detection import FaceDetector, detector_for_file
from edge.vision.dlib_embedding import DLIB_FILE
from edge.vision.embedding import Embedder
from edge.vision.errors import FaceError
from edge.vision.types import Face

__all__ = [
    "Bounds",
    "QuantContext",
    "RoleResult",
    "calibration_feeds",
    "calibration_images",
    "format_results",
    "gate",
    "measure_latency",
    "quantize_role",
]

log = logging.getLogger(__name__)

#: calibration folders inside the labelled test folder, used when --calib is not given
CALIB_SUBDIRS = ("faces_by_identity", "multi_face")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
FACES_PER_CALIB_IMAGE = 4


@dataclass(frozen=True)
class Bounds:
    """The accepted accuracy loss (design.md: INT8 only within a stated bound)."""

    tar_drop: float = 0.01  # TAR@FAR1e-3, absolute
    auc_drop: float = 0.005
    det_drop: float = 0.02  # detection recall / precision, absolute
    count_agreement: float = 0.98  # same number of faces found per image
    mask_agreement: float = 0.98  # same with_mask / without_mask / no-decision outcome


class _Tee:
    """An InferenceSession that forwards to a real one and keeps a copy of every feed."""

    def __init__(self, inner: InferenceSession) -> None:
        self.inner = inner
        self.info = inner.info
        self.role = inner.role
        self.feeds: list[dict[str, np.ndarray]] = []

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        self.feeds.append({k: np.array(v, dtype=np.float32, copy=True) for k, v in feeds.items()})
        return self.inner.run(feeds)


class _FixedSessions:
    """Gives registry-taking wrappers (MaskDetector) a chosen session, FP or INT8."""

    def __init__(self, sessions: Mapping[str, InferenceSession]) -> None:
        self._s = dict(sessions)

    def session(self, role: str) -> InferenceSession:
        return self._s[role]


def calibration_images(dirs: Sequence[Path], limit: int | None) -> list[Path]:
    """Image files under `dirs` (sorted), thinned evenly to `limit` so every folder and
    identity is represented rather than the first few alphabetically."""
    files = sorted(
        f for d in dirs for f in Path(d).rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES
    )
    if limit and len(files) > limit:
        idx = np.linspace(0, len(files) - 1, limit).round().astype(int)
        files = [files[i] for i in sorted(set(idx.tolist()))]
    return files


def _read(path: Path) -> np.ndarray | None:
    return cv2.imread(str(path), cv2.IMREAD_COLOR)


@dataclass
class _IdentityFace:
    sample: Sample
    face: Face | None
    crop: np.ndarray | None


class QuantContext:
    """The FP models and the labelled data the gates compare against (loaded once)."""

    def __init__(
        self,
        settings: Settings,
        testdata: Path,
        *,
        eval_limit: int | None = None,
        progress: bool = True,
        bounds: Bounds | None = None,
    ) -> None:
        fp_settings = settings.model_copy(
            update={"models": settings.models.model_copy(update={"int8": False})}
        )
        self.settings = fp_settings
        models = Models.load(fp_settings)  # the FP models, built as the service builds them
        self.registry = models.registry
        self.pipe = models.pipeline
        self.testdata = Path(testdata)
        self.eval_limit = eval_limit
        self.progress = progress
        self.bounds = bounds or Bounds()
        self._faces: list[_IdentityFace] | None = None
        self._images: dict[str, np.ndarray] = {}

    def image(self, rel: str) -> np.ndarray | None:
        img = self._images.get(rel)
        if img is None:
            img = _read(self.testdata / rel)
            if img is not None:
                self._images[rel] = img
        return img

    def identity_faces(self) -> list[_IdentityFace]:
        """Largest face per labelled identity image, as the API's fast path finds it."""
        if self._faces is None:
            items = identity_items(self.testdata)
            if self.eval_limit and len(items) > self.eval_limit:
                idx = np.linspace(0, len(items) - 1, self.eval_limit).round().astype(int)
                items = [items[i] for i in sorted(set(idx.tolist()))]
            out = []
            bar = Progress("gate faces", len(items), self.progress)
            for i, s in enumerate(items, 1):
                img = self.image(s.file)
                face = crop = None
                if img is None:
                    s.error = "unreadable image"
                else:
                    try:
                        face = self.pipe.analyze_largest(img, embed=False).face
                        crop = align_face(img, face.kps)
                    except FaceError as e:
                        s.error = e.detail
                out.append(_IdentityFace(s, face, crop))
                bar.step(i)
            self._faces = out
        return self._faces

    def detector(self, role: str, session: InferenceSession) -> FaceDetector:
        """The product's wrapper for `role` around `session`, with the configured sizes."""
        det = self.settings.detection
        fast = role == "detector_fast"
        return detector_for_file(
            self.registry.path(role).name,
            session,
            score=det.fast_score if fast else det.slow_score,
            iou=det.nms_iou,
            input_long=det.fast_input if fast else det.slow_input,
        )

    def open(self, path: Path, role: str) -> InferenceSession:
        cfg = self.settings.models
        return open_session(
            path,
            role,
            "openvino",
            device=cfg.openvino_device,
            threads=cfg.threads,
            precision=cfg.openvino_precision,
        )


# Calibration ------------------------------------------------------------------------------
def calibration_feeds(
    ctx: QuantContext, role: str, images: Sequence[Path]
) -> tuple[list[dict[str, np.ndarray]], int]:
    """(feeds exactly as the product's wrapper builds them, images that gave a feed)."""
    tee = _Tee(ctx.registry.session(role))
    used = 0
    bar = Progress(f"calibrate {role}", len(images), ctx.progress)
    emb = Embedder(tee) if role == "embedding" else None
    mask = MaskDetector(_FixedSessions({"mask": tee})) if role == "mask" else None  # type: ignore[arg-type]
    det = ctx.detector(role, tee) if role.startswith("detector") else None
    for i, path in enumerate(images, 1):
        img = _read(path)
        bar.step(i)
        if img is None:
            continue
        before = len(tee.feeds)
        if det is not None:
            det.detect(img)
        elif mask is not None:
            mask.raw(img)
        elif emb is not None:
            for a in ctx.pipe.detect_all(img)[:FACES_PER_CALIB_IMAGE]:
                emb.embed(align_face(img, a.face.kps))
        used += len(tee.feeds) > before
    return tee.feeds, used


# Gates ------------------------------------------------------------------------------------
def _mixed_pairs(fp: list[Sample], q: list[Sample]) -> Pairs:
    """Pairs with an FP vector on one side and an INT8 vector on the other: a gallery
    enrolled before the switch searched with INT8 probes (the fingerprint stays the same)."""
    keep = [i for i, s in enumerate(fp) if s.embedding is not None]
    e_fp = np.stack([fp[i].embedding for i in keep]).astype(np.float32)  # type: ignore[misc]
    e_q = np.stack([q[i].embedding for i in keep]).astype(np.float32)  # type: ignore[misc]
    ids = np.array([fp[i].identity for i in keep])
    kinds = np.array([fp[i].kind for i in keep])
    iu, ju = np.triu_indices(len(keep), k=1)
    cos = (e_fp @ e_q.T)[iu, ju].astype(np.float64)
    same = ids[iu] == ids[ju]
    kind = np.where(kinds[iu] == kinds[ju], kinds[iu], "mixed")
    return Pairs(cos[same], cos[~same], kind[same], kind[~same])


def _verification_checks(
    ctx: QuantContext,
    rows_fp: Mapping[str, dict[str, Any]],
    rows_q: Mapping[str, dict[str, Any]],
    prefix: str,
) -> list[GateCheck]:
    """TAR@FAR1e-3 and AUC for all pairs and for every image kind with enough impostor
    pairs to resolve FAR 1e-3 (the eval's own `resolvable` flag)."""
    b = ctx.bounds
    checks = []
    for subset, f in rows_fp.items():
        g = rows_q.get(subset)
        if g is None or not f["far=0.001 resolvable"]:
            continue
        name = f"{prefix}{subset}"
        tar_f, tar_q = f["tar@far=0.001"], g["tar@far=0.001"]
        checks.append(GateCheck.drop(f"{name} TAR@FAR1e-3", tar_f, tar_q, b.tar_drop))
        checks.append(GateCheck.drop(f"{name} AUC", f["auc"], g["auc"], b.auc_drop))
    return checks


def _recognition_rows(
    ctx: QuantContext, det: FaceDetector, emb: Embedder
) -> dict[str, dict[str, Any]]:
    """Verification with faces found and aligned by `det` (largest face per image) and the
    FP embedding: what a detector's keypoints do to recognition."""
    samples = []
    for it in ctx.identity_faces():
        s = Sample(it.sample.file, it.sample.identity, it.sample.kind)
        img = ctx.image(s.file)
        faces = det.detect(img) if img is not None else []
        if img is not None and faces:
            face = max(faces, key=lambda f: f.area)
            s.embedding = emb.embed(align_face(img, face.kps))
        else:
            s.error = "no face found"
        samples.append(s)
    thr = ctx.pipe.calibration.cos_at_threshold
    return {r["subset"]: r for r in verification(pair_cosines(samples), thr)}


def _gate_embedding(
    ctx: QuantContext, fp: InferenceSession, q: InferenceSession
) -> tuple[list[GateCheck], dict[str, float]]:
    fp_e, q_e = Embedder(fp), Embedder(q)
    a_s, b_s, cos = [], [], []
    for item in ctx.identity_faces():
        s = item.sample
        a = Sample(s.file, s.identity, s.kind, error=s.error)
        b = Sample(s.file, s.identity, s.kind, error=s.error)
        if item.crop is not None:
            a.embedding, b.embedding = fp_e.embed(item.crop), q_e.embed(item.crop)
            cos.append(float(a.embedding @ b.embedding))
        a_s.append(a)
        b_s.append(b)
    thr = ctx.pipe.calibration.cos_at_threshold
    rows_fp = {r["subset"]: r for r in verification(pair_cosines(a_s), thr)}
    rows_q = {r["subset"]: r for r in verification(pair_cosines(b_s), thr)}
    rows_mixed = {r["subset"]: r for r in verification(_mixed_pairs(a_s, b_s), thr)}
    checks = _verification_checks(ctx, rows_fp, rows_q, "")
    checks += _verification_checks(ctx, rows_fp, rows_mixed, "FP-vs-INT8 ")
    c = np.array(cos)
    info = {"faces": float(len(c)), "cos_min": float(c.min()), "cos_mean": float(c.mean())}
    return checks, info


def _gate_detector(
    ctx: QuantContext, role: str, fp: InferenceSession, q: InferenceSession
) -> tuple[list[GateCheck], dict[str, float]]:
    fp_d, q_d = ctx.detector(role, fp), ctx.detector(role, q)
    rows, _ = detection(ctx.testdata, {"fp": fp_d.detect, "int8": q_d.detect}, ctx.progress)
    f, g = rows
    checks = [
        GateCheck.drop(m, f[m], g[m], ctx.bounds.det_drop)
        for m in ("dlib recall@0.5", "dlib precision@0.5", "nose recall", "nose precision")
    ]
    same = n = 0
    for item in ctx.identity_faces():
        img = ctx.image(item.sample.file)
        if img is None:
            continue
        n += 1
        same += len(fp_d.detect(img)) == len(q_d.detect(img))
    checks.append(
        GateCheck.at_least(
            "same face count", same / n if n else float("nan"), ctx.bounds.count_agreement
        )
    )
    emb = Embedder(ctx.registry.session("embedding"))
    checks += _verification_checks(
        ctx, _recognition_rows(ctx, fp_d, emb), _recognition_rows(ctx, q_d, emb), "aligned by it: "
    )
    return checks, {"images": float(n)}


def _mask_decision(md: MaskDetector, img: np.ndarray, face: Face) -> str:
    hit = md.match(img, face)
    if hit is None:
        return "none"
    return "with_mask" if hit.mask_share >= 0.5 else "without_mask"


def _gate_mask(
    ctx: QuantContext, fp: InferenceSession, q: InferenceSession
) -> tuple[list[GateCheck], dict[str, float]]:
    md_fp = MaskDetector(_FixedSessions({"mask": fp}))  # type: ignore[arg-type]
    md_q = MaskDetector(_FixedSessions({"mask": q}))  # type: ignore[arg-type]
    pairs: list[tuple[str, Face]] = [
        (it.sample.file, it.face) for it in ctx.identity_faces() if it.face is not None
    ]
    extra = sorted(
        str(p.relative_to(ctx.testdata))
        for d in ("multi_face", "awkward")
        for p in (ctx.testdata / d).glob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES
    )
    for rel in extra:
        img = ctx.image(rel)
        if img is not None:
            pairs += [(rel, a.face) for a in ctx.pipe.detect_all(img)]
    agree = masked = 0
    for rel, face in pairs:
        img = ctx.image(rel)
        assert img is not None
        a, b = _mask_decision(md_fp, img, face), _mask_decision(md_q, img, face)
        agree += a == b
        masked += a == "with_mask"
    rate = agree / len(pairs) if pairs else float("nan")
    checks = [GateCheck.at_least("mask decision agreement", rate, ctx.bounds.mask_agreement)]
    return checks, {"faces": float(len(pairs)), "fp_with_mask": float(masked)}


def gate(
    ctx: QuantContext, role: str, fp: InferenceSession, q: InferenceSession
) -> tuple[list[GateCheck], dict[str, float]]:
    """The role's accuracy checks, FP vs INT8, on the labelled test folder."""
    if role == "embedding":
        return _gate_embedding(ctx, fp, q)
    if role == "mask":
        return _gate_mask(ctx, fp, q)
    if role.startswith("detector"):
        return _gate_detector(ctx, role, fp, q)
    raise ValueError(f"no accuracy gate for role {role!r}")


# Latency ----------------------------------------------------------------------------------
def measure_latency(
    sessions: Mapping[str, InferenceSession], feed: Mapping[str, np.ndarray], runs: int = 60
) -> dict[str, float]:
    """p50/p95 ms per named session on one real feed, interleaved in blocks of 10 so that a
    shared CPU's load changes hit all alike."""
    for s in sessions.values():
        for _ in range(3):
            s.run(feed)
    times: dict[str, list[float]] = {name: [] for name in sessions}
    done = 0
    while done < runs:
        n = min(10, runs - done)
        for name, s in sessions.items():
            for _ in range(n):
                t0 = time.perf_counter()
                s.run(feed)
                times[name].append((time.perf_counter() - t0) * 1000.0)
        done += n
    out = {}
    for name, t in times.items():
        arr = np.asarray(t)
        out[f"{name}_p50"] = percentile(arr, 50)
        out[f"{name}_p95"] = percentile(arr, 95)
    out["runs"] = float(runs)
    return out


# One role ---------------------------------------------------------------------------------
@dataclass
class RoleResult:
    role: str
    file: str
    accepted: bool | None  # None: not quantized (skipped)
    reason: str
    checks: list[GateCheck] = field(default_factory=list)
    info: dict[str, float] = field(default_factory=dict)
    latency: dict[str, float] = field(default_factory=dict)
    fp_precision: str = ""
    calibration_images: int = 0
    calibration_samples: int = 0
    written: Path | None = None


def quantize_role(
    ctx: QuantContext,
    role: str,
    images: Sequence[Path],
    *,
    runs: int = 60,
    feeds: list[dict[str, np.ndarray]] | None = None,
) -> RoleResult:
    """Calibrate, quantize, save the IR, gate it and record the verdict in its sidecar.

    `feeds` overrides the captured calibration (used to check that the gate catches a
    broken calibration)."""
    spec = ctx.registry.files(role)[0]
    src = ctx.registry.path(role)
    if role not in QUANTIZABLE_ROLES or src.suffix.lower() != ".onnx":
        return RoleResult(role, spec.file, None, "not a quantizable ONNX role")
    if spec.file == DLIB_FILE:  # the gate embeds MobileFaceNet crops (cc0 pack)
        return RoleResult(role, spec.file, None, "the INT8 gate is written for MobileFaceNet")
    used = len(images)
    if feeds is None:
        feeds, used = calibration_feeds(ctx, role, images)
    if not feeds:
        return RoleResult(role, spec.file, None, "calibration images gave no samples")
    model = quantize_feeds(src, feeds)
    variant = save_ir(model, ctx.registry.model_dir, spec.file)
    fp = ctx.registry.session(role)
    q = ctx.open(variant.xml, role)
    checks, info = gate(ctx, role, fp, q)
    # The configured FP session (bf16 on CPUs with AMX) and plain f32, the usual edge case.
    f32 = open_session(
        src,
        role,
        "openvino",
        device=ctx.settings.models.openvino_device,
        threads=ctx.settings.models.threads,
        precision="f32",
    )
    lat = measure_latency({"fp": fp, "f32": f32, "int8": q}, feeds[0], runs)
    failed = [c for c in checks if not c.ok]
    reason = "; ".join(_describe(c) for c in failed) if failed else "all checks within bounds"
    meta = new_sidecar(
        spec,
        role,
        accepted=not failed,
        reason=reason,
        calibration_images=used,
        calibration_samples=len(feeds),
        checks=checks,
        latency_ms=lat,
        source_sha256=file_sha256(src),
    )
    write_sidecar(variant, meta)
    return RoleResult(
        role,
        spec.file,
        not failed,
        reason,
        checks,
        info,
        lat,
        fp.info.precision,
        used,
        len(feeds),
        variant.xml,
    )


def _describe(c: GateCheck) -> str:
    if c.kind == "min_value":
        return f"{c.metric} {c.int8:.4f} < {c.bound:.4f}"
    return f"{c.metric} dropped {c.fp - c.int8:.4f} (> {c.bound:.4f})"


def format_results(results: Sequence[RoleResult]) -> str:
    rows: list[list[Any]] = []
    for r in results:
        for c in r.checks:
            delta = f"{c.int8 - c.fp:+.4f}" if c.kind == "max_drop" else "-"
            bound = f"drop<={c.bound:g}" if c.kind == "max_drop" else f">={c.bound:g}"
            fp = f"{c.fp:.4f}" if c.kind == "max_drop" else "-"
            rows.append(
                [
                    r.role,
                    c.metric,
                    fp,
                    f"{c.int8:.4f}",
                    delta,
                    bound,
                    "ok" if c.ok else "FAIL",
                ]
            )
    out = ["Accuracy gate (FP vs INT8 on the labelled test folder)"]
    out.append(table(["role", "metric", "FP", "INT8", "delta", "bound", "check"], rows))
    out += ["", "Latency, OpenVINO CPU, one real input, p50/p95 ms, interleaved in one run"]
    lat_rows = []
    for r in results:
        if not r.latency:
            continue
        L = r.latency
        lat_rows.append(
            [
                r.role,
                f"{r.fp_precision}",
                f"{L['fp_p50']:.2f}",
                f"{L['fp_p95']:.2f}",
                f"{L['f32_p50']:.2f}",
                f"{L['f32_p95']:.2f}",
                f"{L['int8_p50']:.2f}",
                f"{L['int8_p95']:.2f}",
                f"{L['fp_p50'] / max(L['int8_p50'], 1e-9):.2f}x",
                f"{L['f32_p50'] / max(L['int8_p50'], 1e-9):.2f}x",
                int(L["runs"]),
            ]
        )
    cols = [
        "role",
        "FP prec",
        "FP p50",
        "FP p95",
        "f32 p50",
        "f32 p95",
        "INT8 p50",
        "INT8 p95",
        "FP/INT8",
        "f32/INT8",
        "runs",
    ]
    out.append(table(cols, lat_rows))
    out += ["", "Verdict"]
    v_rows = []
    for r in results:
        verdict = "skipped" if r.accepted is None else ("ACCEPTED" if r.accepted else "REJECTED")
        v_rows.append(
            [r.role, r.file, verdict, r.calibration_images, r.calibration_samples, r.reason]
        )
    out.append(table(["role", "file", "verdict", "calib images", "samples", "reason"], v_rows))
    return "\n".join(out)
