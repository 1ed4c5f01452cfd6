"""Detectors on real photos with real model files (both backends)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edge.engine import Models
from edge.runtime.backends import open_session
from edge.vision.detection import (
    RetinaFaceDetector,
    ScrfdDetector,
    YuNetDetector,
    build_detectors,
    detector_for_file,
    nms,
)
from tests.support.images import read_bgr
from tests.vision.vision_helpers import iou

KINDS = {
    "yunet": ("face_detection_yunet_2026may.onnx", 320),
    "retinaface": ("retinaface_mobilenet0.25_640x640.onnx", 640),
    "scrfd": ("scrfd_2.5g_bnkps.onnx", 640),
}


def _detector(model_dir: Path, kind: str, backend: str = "openvino"):  # type: ignore[no-untyped-def]
    file, size = KINDS[kind]
    sess = open_session(model_dir / file, f"test_{kind}", backend)
    return detector_for_file(file, sess, score=0.6, iou=0.4, input_long=size)


@pytest.fixture(scope="module", params=sorted(KINDS))
def detector(request: pytest.FixtureRequest, model_dir: Path):  # type: ignore[no-untyped-def]
    return _detector(model_dir, request.param)


SINGLE = [
    "faces_by_identity/barack_obama/1.jpg",
    "faces_by_identity/joe_biden/1.jpg",
    "faces_by_identity/alex_lacamoire/1.png",
    "faces_by_identity/elon_musk/1.jpg",
]


@pytest.mark.parametrize("rel", SINGLE)
def test_single_face_photos_give_one_face(detector, testdata: Path, rel: str) -> None:  # type: ignore[no-untyped-def]
    img = read_bgr(testdata / rel)
    faces = detector.detect(img)
    assert len(faces) == 1
    f = faces[0]
    h, w = img.shape[:2]
    assert 0 <= f.box[0] < f.box[2] <= w * 1.05 and 0 <= f.box[1] < f.box[3] <= h * 1.05
    # Keypoints lie inside the box, eyes above the mouth, image-left eye left of the right one.
    assert np.all(f.kps[:, 0] > f.box[0]) and np.all(f.kps[:, 0] < f.box[2])
    assert f.kps[0, 0] < f.kps[1, 0]
    assert max(f.kps[0, 1], f.kps[1, 1]) < min(f.kps[3, 1], f.kps[4, 1])


@pytest.mark.parametrize(("rel", "count"), [("fr_two_people.jpg", 2), ("deepface_couple.jpg", 2)])
def test_multi_face_counts(detector, testdata: Path, rel: str, count: int) -> None:  # type: ignore[no-untyped-def]
    faces = detector.detect(read_bgr(testdata / "multi_face" / rel))
    assert len(faces) == count
    scores = [f.score for f in faces]
    assert scores == sorted(scores, reverse=True)


def test_dlib_boxes_are_scaled_back(detector, testdata: Path) -> None:  # type: ignore[no-untyped-def]
    """Every hand-labelled dlib face is matched by a detection with IoU >= 0.5."""
    ann = json.loads((testdata / "annotations" / "dlib_pascal_voc_faces.json").read_text())
    for rel, v in ann["images"].items():
        faces = detector.detect(read_bgr(testdata / rel))
        for g in v["faces"]:
            x, y, w, h = g["box_xywh"]
            gt = np.array([x, y, x + w, y + h], dtype=np.float32)
            best = max((iou(gt, f.box) for f in faces), default=0.0)
            assert best >= 0.5, (rel, g, best)


def test_compreface_noses_in_exactly_one_box(testdata: Path, model_dir: Path) -> None:
    # RetinaFace (the default slow detector) fired between two faces of compreface_011_3,
    # a box holding both noses, until `nms` dropped boxes straddling two better ones.
    ann = json.loads((testdata / "annotations" / "compreface_nose_points.json").read_text())
    for kind in ("yunet", "scrfd", "retinaface"):
        det = _detector(model_dir, kind)
        for rel, v in ann["images"].items():
            faces = det.detect(read_bgr(testdata / rel))
            for x, y in v["nose_tips_xy"]:
                inside = [
                    f for f in faces if f.box[0] <= x <= f.box[2] and f.box[1] <= y <= f.box[3]
                ]
                assert len(inside) == 1, (kind, rel, (x, y))


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_openvino_and_onnxruntime_agree(kind: str, model_dir: Path, testdata: Path) -> None:
    img = read_bgr(testdata / "multi_face" / "fr_two_people.jpg")
    a = _detector(model_dir, kind, "openvino").detect(img)
    b = _detector(model_dir, kind, "onnxruntime").detect(img)
    assert len(a) == len(b) == 2
    for fa, fb in zip(a, b, strict=True):
        tol = 0.01 * fa.width  # 1 % of the face: far below any use of the coordinates
        assert np.abs(fa.box - fb.box).max() < tol
        assert np.abs(fa.kps - fb.kps).max() < tol
        assert abs(fa.score - fb.score) < 1e-3


def test_no_face_landscape(detector, testdata: Path) -> None:  # type: ignore[no-untyped-def]
    assert detector.detect(read_bgr(testdata / "awkward" / "no_face_landscape_view.jpg")) == []


def test_yunet_same_face_at_other_frame_sizes(model_dir: Path, testdata: Path) -> None:
    """Anchors are cached per input size: a padded canvas must not reuse the wrong grid."""
    det = _detector(model_dir, "yunet")
    img = read_bgr(testdata / SINGLE[0])
    ref = det.detect(img)[0]
    h, w = img.shape[:2]
    canvas = np.zeros((h, w * 2, 3), np.uint8)
    canvas[:, :w] = img
    moved = det.detect(canvas)[0]
    # Twice the width halves the network scale: the same face, within resampling noise.
    assert iou(ref.box, moved.box) > 0.85
    assert np.abs(ref.kps - moved.kps).max() < 0.06 * ref.width  # a wrong grid is off by cells


def test_nms_suppresses_overlaps_keeps_separate() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 10]], float)
    scores = np.array([0.7, 0.9, 0.8, 0.1])
    keep = nms(boxes, scores, 0.4)
    assert keep.tolist() == [1, 2]
    assert nms(np.zeros((0, 4)), np.zeros(0), 0.4).size == 0


def test_nms_drops_a_box_straddling_two_better_ones() -> None:
    # Two faces side by side and a weaker box over the inner halves of both: each IoU is
    # under 0.4, so only the coverage rule removes it.
    left, right = [0, 0, 100, 120], [90, 5, 190, 125]
    between = [45, 0, 145, 120]
    boxes = np.array([left, right, between], float)
    ious = [iou(np.array(between, float), np.array(b, float)) for b in (left, right)]
    assert max(ious) < 0.4
    assert nms(boxes, np.array([0.99, 0.98, 0.75]), 0.4).tolist() == [0, 1]
    # The same weak box next to only one better box is a separate face: kept.
    assert nms(boxes[[0, 2]], np.array([0.99, 0.75]), 0.4).tolist() == [0, 1]
    # A box a third covered by two neighbours (a face between two others) is kept too.
    wide = np.array([[0, 0, 100, 120], [200, 0, 300, 120], [70, 0, 230, 120]], float)
    assert nms(wide, np.array([0.99, 0.98, 0.9]), 0.4).tolist() == [0, 1, 2]
    # A better box is never dropped because of a worse one.
    assert nms(boxes, np.array([0.7, 0.75, 0.99]), 0.4).tolist() == [2, 1, 0]


def test_build_detectors_picks_wrapper_by_pack(make_settings) -> None:  # type: ignore[no-untyped-def]
    s = make_settings()
    fast, slow = build_detectors(Models.load(s).registry, s)
    assert isinstance(fast, YuNetDetector) and isinstance(slow, RetinaFaceDetector)
    s2 = make_settings(models={"pack": "research-nc"})
    fast2, slow2 = build_detectors(Models.load(s2).registry, s2)
    assert isinstance(fast2, YuNetDetector) and isinstance(slow2, ScrfdDetector)
    assert fast2.input_long == s2.detection.fast_input
