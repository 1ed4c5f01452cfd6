"""The rigid-motion cue: hand-built point sets, real meshes on real frames, the fusion rule."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.camera import rigid as rg
from edge.camera.decision import (
    LivenessScore,
    Observation,
    Rules,
    TrackDecision,
    liveness_verdict,
)
from edge.config import Settings
from edge.engine import Engine, Models
from edge.evaluation.rigid import plane_turn
from edge.vision.details import DetailAnalyzer
from edge.vision.geometry import PixelBox

F = 800.0  # focal length (px) of the synthetic pinhole
DIST = 8.0  # face distance, in inter-ocular distances


def _face_points(n: int = 80, seed: int = 0) -> np.ndarray:
    """A face-like 3D surface (units of inter-ocular distance): a curved mask with a nose."""
    rng = np.random.default_rng(seed)
    x, y = rng.uniform(-1.0, 1.0, n), rng.uniform(-1.2, 1.2, n)
    z = 0.35 * (x**2 + y**2) - 0.45 * np.exp(-(x**2 + (y - 0.2) ** 2) / 0.08)  # toward camera < 0
    return np.c_[x, y, z]


def _project(p: np.ndarray, yaw: float, pitch: float = 0.0) -> np.ndarray:
    y, t = math.radians(yaw), math.radians(pitch)
    ry = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    rx = np.array([[1, 0, 0], [0, math.cos(t), -math.sin(t)], [0, math.sin(t), math.cos(t)]])
    cam = p @ (ry @ rx).T + (0.0, 0.0, DIST)
    out: np.ndarray = F * cam[:, :2] / cam[:, 2:] + 320.0
    return out


IOD_PX = F / DIST  # one unit at the face's distance, in pixels


def test_a_plane_turned_in_3d_fits_a_homography_and_reads_flat() -> None:
    flat = _face_points() * (1.0, 1.0, 0.0)  # the same layout, printed on a sheet
    pairs = [
        rg.pair_motion(_project(flat, a), _project(flat, b), IOD_PX)
        for a, b in ((0, 20), (20, -5), (-5, 15))
    ]
    assert all(p is not None and p.counts for p in pairs)  # the sheet did turn
    assert all(p is not None and p.residual < 1e-6 for p in pairs)
    ev = rg.rigid_evidence([p for p in pairs if p is not None])
    assert ev.verdict == "flat" and ev.pairs == 3 and ev.score is not None and ev.score < 0.01


def test_a_3d_face_turned_shows_parallax_and_reads_depth() -> None:
    face = _face_points()
    pairs = [
        rg.pair_motion(_project(face, a, p), _project(face, b, q), IOD_PX)
        for (a, p), (b, q) in (((0, 0), (15, 0)), ((15, 0), (0, 8)), ((0, 8), (-12, 0)))
    ]
    assert all(p is not None and p.counts for p in pairs)
    ev = rg.rigid_evidence([p for p in pairs if p is not None])
    assert ev.verdict == "depth", ev
    # the same surface flattened onto its sheet moves the same way but leaves no residual
    flat = face * (1.0, 1.0, 0.0)
    m = rg.pair_motion(_project(flat, 0), _project(flat, 15), IOD_PX)
    assert m is not None and m.residual < 0.05 * pairs[0].residual  # type: ignore[union-attr]


def test_in_plane_or_tiny_motion_leaves_the_cue_undecided() -> None:
    face = _face_points()
    a = _project(face, 0)
    turn = np.array([[math.cos(0.2), -math.sin(0.2)], [math.sin(0.2), math.cos(0.2)]])
    rolled = 1.1 * (a - 320) @ turn.T + 340  # roll, scale, shift: a similarity, any object
    tiny = _project(face, 1.0)  # a one-degree turn
    pairs = [rg.pair_motion(a, rolled, IOD_PX), rg.pair_motion(a, tiny, IOD_PX)]
    assert all(p is not None and not p.counts for p in pairs)
    assert rg.rigid_evidence([p for p in pairs if p is not None]) == rg.RigidEvidence(
        "undecided", None, 0
    )
    state = rg.RigidMotion()
    for p in pairs:
        state.add(p)  # type: ignore[arg-type]
    assert state.pairs == 0 and state.evidence().verdict == "undecided"
    assert rg.pair_motion(a[:5], a[:5], IOD_PX) is None  # too few points to fit a homography


def test_one_counted_pair_is_not_enough_and_mixed_scores_stay_undecided() -> None:
    flat = rg.PairMotion(similarity=0.04, residual=0.002)  # ratio 0.05
    head = rg.PairMotion(similarity=0.04, residual=0.02)  # ratio 0.5
    assert rg.rigid_evidence([flat]).verdict == "undecided"
    assert rg.rigid_evidence([flat, flat]).verdict == "flat"
    assert rg.rigid_evidence([head, head, flat]).verdict == "depth"  # the median
    between = rg.PairMotion(similarity=0.04, residual=0.012)  # ratio 0.3: neither
    assert rg.rigid_evidence([between, between]).verdict == "undecided"


# Fusion ---------------------------------------------------------------------------------
ON = Rules(liveness=True, rigid=True)
OFF = Rules(liveness=True)


def test_flat_turns_a_live_verdict_into_spoof_only_when_the_rule_is_on() -> None:
    live_votes = [0.1, 0.2, 0.1]
    assert liveness_verdict(live_votes, 3, ON, rigid="flat").verdict == "spoof"
    assert liveness_verdict(live_votes, 3, OFF, rigid="flat").verdict == "live"
    # undecided: exactly the single-image verdict; depth never clears a spoof majority
    for votes in (live_votes, [0.9, 0.8, 0.2]):
        assert (
            liveness_verdict(votes, 3, ON, rigid="undecided")
            == liveness_verdict(votes, 3, OFF)
            == liveness_verdict(votes, 3, ON, rigid="depth")
        )
    assert liveness_verdict([], 3, ON, rigid="flat").verdict == "uncertain"  # no votes


def test_track_decision_collects_the_motion_of_its_frames() -> None:
    box = PixelBox(10, 10, 50, 50)
    flat = rg.PairMotion(similarity=0.04, residual=0.002)

    def run(rules: Rules, motions: list[rg.PairMotion | None]) -> TrackDecision[int]:
        td: TrackDecision[int] = TrackDecision(rules)
        for m in motions:
            td.observe(Observation(0.5, box, (64, 64), LivenessScore(0.1, True, None, m)), int)
        return td

    on = run(ON, [None, flat, flat])
    assert on.rigid().verdict == "flat" and on.verdict().verdict == "spoof"
    assert run(OFF, [None, flat, flat]).verdict().verdict == "live"
    assert run(ON, [None, flat]).verdict().verdict == "live"  # one pair: undecided


# Real meshes on real frames -------------------------------------------------------------
@pytest.fixture(scope="module")
def mesh_models(session_settings: Settings) -> tuple[Models, DetailAnalyzer]:
    models = Models.load(session_settings)
    an = DetailAnalyzer(models.registry)
    if not an.has_mesh:
        pytest.skip(f"pack {models.registry.pack_name} has no landmarks468 (mesh)")
    return models, an


def _motions(models: Models, an: DetailAnalyzer, frames: list[np.ndarray]) -> list[rg.PairMotion]:
    tm, out = rg.TrackMotion(), []
    for bgr in frames:
        faces = models.pipeline.detect_fast(bgr)
        assert faces, "the detector lost the face"
        face = max(faces, key=lambda f: f.area)
        m = tm.see(bgr, an.mesh.predict(bgr, face).points)
        if m is not None:
            out.append(m)
    return out


def test_real_mesh_on_a_photo_turned_like_a_sheet_reads_flat(
    mesh_models: tuple[Models, DetailAnalyzer], testdata: Path
) -> None:
    models, an = mesh_models
    photo = cv2.imread(str(testdata / "faces_by_identity" / "barack_obama" / "1.jpg"))
    h, w = photo.shape[:2]
    frames = [
        np.asarray(cv2.warpPerspective(photo, plane_turn(w, h, yaw, pitch, 0), (w, h)))
        for yaw, pitch in ((0, 0), (22, 5), (-5, 12), (-22, -4), (5, -12))
    ]
    motions = _motions(models, an, frames)
    ev = rg.rigid_evidence(motions)
    assert ev.verdict == "flat", (ev, motions)


def test_real_mesh_on_a_real_head_turning_reads_depth(
    mesh_models: tuple[Models, DetailAnalyzer], testdata: Path
) -> None:
    models, an = mesh_models
    d = testdata / "faces_by_identity" / "orl_s01"  # ten photos of one head, turned and tilted
    frames = [
        cv2.resize(cv2.imread(str(d / f"{i}.png")), None, fx=2.5, fy=2.5) for i in range(1, 11)
    ]
    ev = rg.rigid_evidence(_motions(models, an, frames))
    assert ev.verdict == "depth", ev


def test_worker_feeds_the_rule_with_followed_mesh_motion(engine: Engine, testdata: Path) -> None:
    """The worker's own path: a photo turned like a sheet gives counted, flat pairs, and
    a track fed by it is `flat`; with the option off the worker measures nothing."""
    from edge.camera.sources import Capture, parse_source
    from edge.camera.tracker import Track
    from edge.camera.worker import CameraWorker, _TrackState
    from edge.config import CameraConfig
    from edge.recognition import Recognition

    rec = Recognition(engine)
    cfg = CameraConfig(name="door", source="0", liveness_rigid=True)
    worker = CameraWorker(cfg, Capture(parse_source("0"), name="door"), rec, print, device_id="d")
    assert worker.rules.rigid and not CameraConfig(name="x", source="0").liveness_rigid
    photo = cv2.imread(str(testdata / "faces_by_identity" / "barack_obama" / "1.jpg"))
    h, w = photo.shape[:2]
    st: _TrackState | None = None
    motions = []
    for yaw, pitch in ((0, 0), (22, 5), (-5, 12), (-22, -4)):
        img = np.asarray(cv2.warpPerspective(photo, plane_turn(w, h, yaw, pitch, 0), (w, h)))
        face = max(rec.detect_frame(img), key=lambda f: f.area)
        if st is None:
            st = _TrackState(Track(1, face, 0.0, 0.0, 0.0), TrackDecision(worker.rules))
        motions.append(worker._motion(st, img, face))
    assert motions[0] is None  # the first frame is the anchor
    counted = [m for m in motions[1:] if m is not None and m.counts]
    assert len(counted) >= 2 and rg.rigid_evidence(counted).verdict == "flat", motions


def test_a_photo_turned_in_front_of_the_camera_is_revised_to_spoof(
    engine: Engine, testdata: Path, tmp_path: Path
) -> None:
    """The threaded loop end to end: a bona fide photo turned like a sheet for 3 s. The
    passive votes call it live; with `liveness_rigid` the flat motion revises it to spoof
    (an undecided cue never held the first decision back), without it stays live."""
    from camera_video import Segment, write_video

    from tests.camera.test_worker import run_video

    photo = cv2.imread(str(testdata / "faces_by_identity" / "barack_obama" / "1.jpg"))
    h, w = photo.shape[:2]
    path = [(22 * math.sin(t), 10 * math.cos(t)) for t in np.linspace(0, 2 * math.pi, 25)[:-1]]
    turned = [
        np.asarray(cv2.warpPerspective(photo, plane_turn(w, h, y, p, 0), (w, h))) for y, p in path
    ]
    video, _ = write_video(
        tmp_path / "turned", [Segment("sheet", turned, [440] * len(turned), seconds=3.0)]
    )
    without, _ = run_video(engine, video)
    with_rule, worker = run_video(engine, video, liveness_rigid=True)
    assert worker.rules.rigid
    assert [e.liveness.verdict for e in without] == ["live"], without
    verdicts = [e.liveness.verdict for e in with_rule]
    assert verdicts[-1] == "spoof", verdicts
    assert verdicts[0] == "live" or len(verdicts) == 1  # first decision: the passive one
