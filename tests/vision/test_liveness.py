"""Liveness scorer on real models and real test images.

Scorers come from `Models.load` (the engine's rule); a unit test of `LivenessScorer` itself
builds one directly only to give it fusion params the shipped calibration lacks.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.config import Settings
from edge.engine import Models
from edge.runtime.registry import ModelRegistry
from edge.vision.liveness import (
    LivenessParams,
    LivenessScorer,
    celeba_crop,
    context_crop_box,
    face_conditions,
    face_quality,
    fuse,
    landmark_box,
    minifas_crop,
    padded_crop_box,
)
from edge.vision.types import Face
from tests.support.images import read_bgr

# Chosen from `edge-face eval liveness` output: far from the threshold on both sides.
SPOOF_FILES = ["apfol_fake_510.png", "apfol_fake_400.png"]
LIVE_FILES = ["doubango_genuine.jpg", "apfol_real_48.png"]


def _liveness(models: Models) -> LivenessScorer:
    assert models.liveness is not None, "the pack must have its liveness roles"
    return models.liveness


@pytest.fixture(scope="module")
def scorer(models: Models) -> LivenessScorer:
    return _liveness(models)


def _img(testdata: Path, name: str) -> np.ndarray:
    folder = "live" if ("real" in name or "genuine" in name) else "spoof"
    return read_bgr(testdata / "liveness" / folder / name)


# --- decisions on real images ------------------------------------------------------------
@pytest.mark.parametrize("name", SPOOF_FILES)
def test_replay_attack_scores_at_or_above_threshold(
    name: str, testdata: Path, scorer: LivenessScorer, largest_face: Callable[..., Face]
) -> None:
    bgr = _img(testdata, name)
    r = scorer.score(bgr, largest_face(bgr))
    assert r.spoof_score >= scorer.params.threshold
    assert set(r.per_model) == {"liveness_v2", "liveness_v1se"}
    assert all(0.0 <= v <= 1.0 for v in r.per_model.values())


@pytest.mark.parametrize("name", LIVE_FILES)
def test_live_face_scores_below_threshold(
    name: str, testdata: Path, scorer: LivenessScorer, largest_face: Callable[..., Face]
) -> None:
    bgr = _img(testdata, name)
    r = scorer.score(bgr, largest_face(bgr))
    assert 0.0 <= r.spoof_score < scorer.params.threshold


def test_score_is_deterministic(
    testdata: Path, scorer: LivenessScorer, largest_face: Callable[..., Face]
) -> None:
    bgr = _img(testdata, "apfol_fake_400.png")
    face = largest_face(bgr)
    first = scorer.score(bgr, face)
    again = scorer.score(bgr.copy(), face)
    assert again.spoof_score == first.spoof_score
    assert again.per_model == first.per_model


def test_fused_score_follows_the_shipped_fusion(
    testdata: Path, scorer: LivenessScorer, largest_face: Callable[..., Face]
) -> None:
    """spoofScore = sigmoid(bias + sum w_i * live-log-odds_i + sum of the cue terms) with the
    JSON's numbers."""
    bgr = _img(testdata, "apfol_real_48.png")
    face = largest_face(bgr)
    r = scorer.score(bgr, face)
    fusion = scorer.params.raw["fusion"]
    z = fusion["bias"]
    for role, p_spoof in r.per_model.items():
        z += fusion["weights"][role] * np.log((1 - p_spoof) / p_spoof)
    cues = scorer.cue_values(bgr, face)  # schema 2: model-free cues (pad_cues)
    for name, c in fusion.get("cues", {}).items():
        z += c["weight"] * (cues[name] - c["mean"]) / c["scale"]
    assert r.spoof_score == pytest.approx(1 / (1 + np.exp(-z)), abs=1e-9)


def test_openvino_and_onnxruntime_agree(
    testdata: Path,
    make_settings: Callable[..., Settings],
    largest_face: Callable[..., Face],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The environment outranks values given to load_settings (as it outranks the YAML file),
    # so a suite run in bf16 would turn the OpenVINO side to bf16 too: pin it here.
    monkeypatch.setenv("EDGE_MODELS__OPENVINO_PRECISION", "f32")
    ov = make_settings(models={"backend": "openvino", "openvino_precision": "f32"})
    ort = make_settings(models={"backend": "onnxruntime", "providers": ["cpu"]})
    s_ov = _liveness(Models.load(ov))
    s_ort = _liveness(Models.load(ort))
    assert s_ort.registry.session("liveness_v2").info.backend == "onnxruntime"
    assert s_ov.registry.session("liveness_v2").info.backend == "openvino"
    # Both compute in f32 but with different kernels (oneDNN vs MLAS): measured differences
    # reach 1.2e-3 of probability on some crops, and the crop itself depends on the face box
    # of the session's detector (bf16 or f32). A preprocessing or wiring mistake differs by
    # orders of magnitude more.
    tol = 3e-3
    for name in SPOOF_FILES + LIVE_FILES + ["doubango_spoof.jpg"]:
        bgr = _img(testdata, name)
        face = largest_face(bgr)
        a, b = s_ov.score(bgr, face), s_ort.score(bgr, face)
        assert abs(a.spoof_score - b.spoof_score) < tol, name
        for role in a.per_model:
            assert abs(a.per_model[role] - b.per_model[role]) < tol, (name, role)


# --- crop geometry -----------------------------------------------------------------------
def test_crop_is_centred_on_the_face_with_the_full_scale() -> None:
    box = np.array([300, 200, 340, 250], np.float32)  # 40 x 50, far from every border
    x1, y1, x2, y2 = context_crop_box(box, 1000, 800, 2.7)
    assert (x2 - x1, y2 - y1) == pytest.approx((108, 135), abs=1)
    assert ((x1 + x2) / 2, (y1 + y2) / 2) == pytest.approx((320, 225), abs=1)


def test_crop_near_a_border_is_shifted_inside_not_cut() -> None:
    box = np.array([2, 10, 42, 60], np.float32)  # touches the top-left corner
    x1, y1, x2, y2 = context_crop_box(box, 640, 480, 4.0)
    assert x1 == 0 and y1 == 0
    assert (x2 - x1, y2 - y1) == pytest.approx((160, 200), abs=1)  # full 4.0x size kept


def test_scale_is_capped_when_the_context_does_not_fit() -> None:
    box = np.array([20, 30, 120, 150], np.float32)  # 100 x 120 face in a 160 x 200 image
    x1, y1, x2, y2 = context_crop_box(box, 160, 200, 2.7)
    scale = min(2.7, 199 / 120, 159 / 100)
    assert (x2 - x1, y2 - y1) == pytest.approx((100 * scale, 120 * scale), abs=1)
    assert x1 >= 0 and x2 <= 159 and y1 >= 0 and y2 <= 199


@settings(max_examples=200, deadline=None)
@given(
    w=st.integers(20, 2000),
    h=st.integers(20, 2000),
    fx=st.floats(-0.3, 1.0),
    fy=st.floats(-0.3, 1.0),
    fw=st.floats(0.02, 1.5),
    fh=st.floats(0.02, 1.5),
    scale=st.sampled_from([1.0, 1.5, 2.7, 4.0]),
)
def test_crop_always_lies_inside_the_image(
    w: int, h: int, fx: float, fy: float, fw: float, fh: float, scale: float
) -> None:
    box = np.array([fx * w, fy * h, (fx + fw) * w, (fy + fh) * h], np.float32)
    x1, y1, x2, y2 = context_crop_box(box, w, h, scale)
    assert 0 <= x1 <= x2 <= w - 1
    assert 0 <= y1 <= y2 <= h - 1


def test_model_input_is_the_resized_raw_bgr_crop(testdata: Path) -> None:
    bgr = _img(testdata, "doubango_genuine.jpg")
    box = np.array([258, 185, 571, 620], np.float32)
    patch = minifas_crop(bgr, box, 2.7, 80)
    x1, y1, x2, y2 = context_crop_box(box, bgr.shape[1], bgr.shape[0], 2.7)
    expected = cv2.resize(bgr[y1 : y2 + 1, x1 : x2 + 1], (80, 80))
    assert patch.shape == (80, 80, 3) and patch.dtype == np.uint8
    assert np.array_equal(patch, expected)  # BGR order, 0-255, no normalisation


def test_padded_crop_keeps_the_nominal_scale_and_fills_black() -> None:
    bgr = np.full((200, 160, 3), 200, np.uint8)
    box = np.array([20, 30, 120, 150], np.float32)  # 2.7x does not fit either axis
    x1, y1, x2, y2 = padded_crop_box(box, 160, 200, 2.7)
    assert (x2 - x1, y2 - y1) == pytest.approx((270, 324), abs=1)  # not capped
    assert ((x1 + x2) / 2, (y1 + y2) / 2) == pytest.approx((70, 90), abs=1)  # face centred
    patch = minifas_crop(bgr, box, 2.7, 80, "pad")
    assert patch[0, 0].tolist() == [0, 0, 0]  # beyond the frame: black
    assert patch[40, 40].tolist() == [200, 200, 200]  # the frame itself
    with pytest.raises(ValueError, match="context mode"):
        minifas_crop(bgr, box, 2.7, 80, "mirror")


def test_padded_crop_equals_the_manifest_crop_when_the_context_fits(testdata: Path) -> None:
    bgr = _img(testdata, "doubango_genuine.jpg")  # 819 x 1024, face about 312 x 432
    box = np.array([258, 185, 571, 620], np.float32)
    assert np.array_equal(minifas_crop(bgr, box, 1.5, 80, "pad"), minifas_crop(bgr, box, 1.5, 80))


# --- landmark box ----------------------------------------------------------------------------
def test_landmark_box_follows_the_landmarks_in_landmark_units() -> None:
    kps = np.array([[40, 50], [60, 50], [50, 60], [42, 70], [58, 70]], np.float32)
    shape = (0.0, -0.3, 3.5, 4.6)
    box = landmark_box(kps, shape)
    c = kps.mean(axis=0)
    r = float(np.sqrt(((kps - c) ** 2).sum(axis=1).mean()))
    assert box is not None
    assert (box[2] - box[0], box[3] - box[1]) == pytest.approx((3.5 * r, 4.6 * r), rel=1e-5)
    assert ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2) == pytest.approx(
        (c[0], c[1] - 0.3 * r), rel=1e-5
    )
    moved = landmark_box(kps * 2 + 7, shape)  # scaling/shifting the face moves the box alike
    assert moved is not None
    assert moved == pytest.approx(box * 2 + 7, abs=1e-3)
    assert landmark_box(np.full((5, 2), 30.0, np.float32), shape) is None  # degenerate


def test_scorer_crops_on_the_landmark_box_not_the_detector_box(
    testdata: Path, scorer: LivenessScorer, largest_face: Callable[..., Face]
) -> None:
    """Same landmarks, another detector box: same crops, same scores (quality may differ)."""
    bgr = _img(testdata, "apfol_fake_400.png")
    face = largest_face(bgr)
    spec = scorer.params.models[0]
    assert all(m.box == "landmarks" for m in scorer.params.models)
    assert scorer.params.landmark_box is not None
    assert np.array_equal(
        scorer.crop_box(spec, face), landmark_box(face.kps, scorer.params.landmark_box)
    )
    other = Face(box=face.box + np.array([-9, 6, 7, -5], np.float32), score=0.5, kps=face.kps)
    assert scorer.score(bgr, other).spoof_score == scorer.score(bgr, face).spoof_score
    moved = Face(box=face.box, score=face.score, kps=face.kps + np.float32(6.0))
    assert scorer.score(bgr, moved).spoof_score != scorer.score(bgr, face).spoof_score
    degenerate = Face(box=face.box, score=face.score, kps=np.zeros((5, 2), np.float32))
    assert np.array_equal(scorer.crop_box(spec, degenerate), face.box)  # falls back


def test_landmark_crops_need_the_landmark_box_constants() -> None:
    d = json.loads(json.dumps(LivenessParams.load("default").raw))
    del d["landmarkBox"]
    with pytest.raises(ValueError, match="landmarkBox"):
        LivenessParams.from_dict(d)


# --- quality gates -------------------------------------------------------------------------
def test_sharp_frontal_full_frame_face_is_reliable(
    testdata: Path, scorer: LivenessScorer, largest_face: Callable[..., Face]
) -> None:
    bgr = _img(testdata, "doubango_genuine.jpg")
    r = scorer.score(bgr, largest_face(bgr))
    assert r.reliable and r.conditions == ()


def test_small_face_is_marked_unreliable(
    testdata: Path, scorer: LivenessScorer, largest_face: Callable[..., Face]
) -> None:
    bgr = _img(testdata, "doubango_genuine.jpg")
    small = cv2.resize(bgr, None, fx=0.12, fy=0.12, interpolation=cv2.INTER_AREA)
    face = largest_face(small)
    assert face.width < scorer.params.gates["min_face_px"]
    r = scorer.score(small, face)
    assert not r.reliable
    assert any("too small" in c for c in r.conditions)


def test_blurred_face_is_marked_unreliable_with_an_unchanged_face(
    testdata: Path, scorer: LivenessScorer, largest_face: Callable[..., Face]
) -> None:
    bgr = _img(testdata, "doubango_genuine.jpg")
    face = largest_face(bgr)
    blurred = cv2.GaussianBlur(bgr, (0, 0), 8)
    r = scorer.score(blurred, face)
    assert not r.reliable
    assert any("blurred" in c for c in r.conditions)
    assert r.quality.sharpness < face_quality(bgr, face).sharpness


def test_turned_face_is_marked_unreliable(
    testdata: Path, scorer: LivenessScorer, largest_face: Callable[..., Face]
) -> None:
    """Moving the nose landmark sideways by one eye distance reads as a strong yaw."""
    bgr = _img(testdata, "doubango_genuine.jpg")
    face = largest_face(bgr)
    kps = face.kps.copy()
    kps[2, 0] += kps[1, 0] - kps[0, 0]
    turned = Face(box=face.box, score=face.score, kps=kps)
    q = face_quality(bgr, turned)
    assert abs(q.yaw) > scorer.params.gates["max_abs_yaw"]
    assert any("turned" in c for c in face_conditions(q, scorer.params.gates))
    assert not any(
        "turned" in c for c in face_conditions(face_quality(bgr, face), scorer.params.gates)
    )


def test_tight_crop_is_marked_as_lacking_context(
    testdata: Path, scorer: LivenessScorer, largest_face: Callable[..., Face]
) -> None:
    bgr = _img(testdata, "apfol_real_48.png")
    r = scorer.score(bgr, largest_face(bgr))
    assert any("context" in c for c in r.conditions)


# --- info, packs, warm-up ------------------------------------------------------------------
def test_model_info_publishes_threshold_measurements_and_rules(scorer: LivenessScorer) -> None:
    info = scorer.model_info()
    assert info.recommended_threshold == 0.5
    m = info.measured
    for k in ("apcer", "bpcer", "acer", "auc"):
        assert 0.0 <= m[k] <= 1.0
    assert m["acer"] == pytest.approx((m["apcer"] + m["bpcer"]) / 2, abs=1e-3)
    assert m["samples"]["live"] > 0 and m["samples"]["spoof"] > 0
    assert len(info.gate_conditions) >= 4
    assert set(info.gate_thresholds) == set(scorer.params.gates)
    assert info.roles == {"liveness_v2", "liveness_v1se"}
    own = [c for c in scorer.registry.components() if c["role"] in info.roles]
    assert {c["role"] for c in own} == info.roles
    assert not any(c["nonCommercial"] for c in own)


def test_default_pack_never_uses_the_celeba_model() -> None:
    params = LivenessParams.load("default")
    assert [m.role for m in params.models] == ["liveness_v2", "liveness_v1se"]


def test_research_pack_scores_with_its_own_fusion(
    testdata: Path, make_settings: Callable[..., Settings], largest_face: Callable[..., Face]
) -> None:
    s = make_settings(models={"pack": "research-nc"})
    nc = _liveness(Models.load(s))
    bgr = _img(testdata, "apfol_fake_510.png")
    r = nc.score(bgr, largest_face(bgr))
    assert set(r.per_model) == {m.role for m in nc.params.models}
    assert 0.0 <= r.spoof_score <= 1.0


def _with_celeba() -> LivenessParams:
    d = json.loads(json.dumps(LivenessParams.load("default").raw))
    d["models"].append(
        {"role": "liveness_celeba", "kind": "celeba", "scale": 1.5, "size": 128, "live_index": 0}
    )
    d["fusion"]["weights"]["liveness_celeba"] = -0.5
    return LivenessParams.from_dict(d)


def test_fusion_needing_a_role_the_pack_lacks_is_refused(
    registry: ModelRegistry, session_settings: Settings
) -> None:
    with pytest.raises(ValueError, match="liveness_celeba"):
        LivenessScorer(registry, session_settings, _with_celeba())


def test_celeba_second_opinion_runs_in_the_research_pack(
    testdata: Path, make_settings: Callable[..., Settings], largest_face: Callable[..., Face]
) -> None:
    s = make_settings(models={"pack": "research-nc"})
    sc = LivenessScorer(Models.load(s).registry, s, _with_celeba())
    bgr = _img(testdata, "doubango_genuine.jpg")
    r = sc.score(bgr, largest_face(bgr))
    assert set(r.per_model) == {"liveness_v2", "liveness_v1se", "liveness_celeba"}
    assert r.per_model["liveness_celeba"] < 0.5  # a genuine full frame: live for it too


def test_celeba_crop_is_square_rgb_with_black_outside() -> None:
    bgr = np.zeros((100, 100, 3), np.uint8)
    bgr[:, :] = (255, 0, 0)  # pure blue in BGR
    box = np.array([0, 0, 40, 40], np.float32)  # 1.5x square reaches past the top-left
    crop = celeba_crop(bgr, box, 1.5, 128)
    assert crop.shape == (128, 128, 3)
    assert crop[5, 5].tolist() == [0, 0, 0]  # outside the image: black
    assert crop[100, 100].tolist() == [0, 0, 255]  # inside: blue, now in RGB order


def test_warmup_runs_every_model(scorer: LivenessScorer) -> None:
    scorer.warmup()
    for m in scorer.params.models:
        assert scorer.registry.opened()[m.role] is not None


@pytest.mark.parametrize("pack", ["default", "research-nc"])
def test_more_spoof_evidence_never_lowers_the_score(pack: str) -> None:
    """Every model enters with a non-positive weight on its live log-odds (monotone fusion)."""
    params = LivenessParams.load(pack)
    assert params.weights and all(w <= 0 for w in params.weights)
    feats = np.array([[2.0] * len(params.weights)])
    base = fuse(feats, np.array(params.weights), params.bias)[0]
    for i in range(len(params.weights)):
        lower = feats.copy()
        lower[0, i] -= 3.0  # this model now believes less in "live"
        assert fuse(lower, np.array(params.weights), params.bias)[0] >= base
