"""Alignment: the least-squares similarity solve and the crop it produces."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.runtime.backends import open_session
from edge.vision.align import ARCFACE_TEMPLATE, align_face, similarity_transform
from edge.vision.detection import detector_for_file
from tests.support.images import read_bgr


@settings(max_examples=50, deadline=None)
@given(
    angle=st.floats(-3.0, 3.0),
    scale=st.floats(0.2, 5.0),
    tx=st.floats(-500, 500),
    ty=st.floats(-500, 500),
)
def test_recovers_an_exact_similarity(angle: float, scale: float, tx: float, ty: float) -> None:
    c, s = np.cos(angle) * scale, np.sin(angle) * scale
    m = np.array([[c, -s, tx], [s, c, ty]])
    src = ARCFACE_TEMPLATE.astype(np.float64)
    dst = src @ m[:, :2].T + m[:, 2]
    est = similarity_transform(src, dst)
    assert np.allclose(est, m, atol=1e-3 * max(1.0, abs(tx), abs(ty)))


def test_mirrored_points_give_a_rotation_not_a_reflection() -> None:
    src = ARCFACE_TEMPLATE.copy()
    dst = src.copy()
    dst[:, 0] = 112 - dst[:, 0]  # a mirror image: no similarity maps one onto the other
    m = similarity_transform(src, dst)
    assert np.linalg.det(m[:, :2]) > 0


def test_aligned_crop_puts_eyes_on_the_template(model_dir: Path, testdata: Path) -> None:
    """Detect, align, then detect again on the crop: eyes and mouth land on the template."""
    sess = open_session(model_dir / "face_detection_yunet_2026may.onnx", "t", "openvino")
    det = detector_for_file("yunet", sess, score=0.5, iou=0.4, input_long=320)
    for rel in ("faces_by_identity/barack_obama/1.jpg", "faces_by_identity/joe_biden/1.jpg"):
        img = read_bgr(testdata / rel)
        face = det.detect(img)[0]
        crop = align_face(img, face.kps)
        assert crop.shape == (112, 112, 3)
        # Put the crop on a larger canvas so the detector sees context around the face.
        canvas = np.zeros((336, 336, 3), np.uint8)
        canvas[112:224, 112:224] = crop
        again = det.detect(canvas)[0]
        kps = again.kps - 112
        err = np.linalg.norm(kps - ARCFACE_TEMPLATE, axis=1)
        assert err[:2].max() < 5.0, (rel, kps)  # eyes, within re-detection noise
        assert err.max() < 8.0, (rel, kps)  # mouth corners: least-squares residual + re-detection


def test_crop_is_the_transform_of_the_source(testdata: Path) -> None:
    img = read_bgr(testdata / "faces_by_identity" / "barack_obama" / "1.jpg")
    kps = np.array([[389, 193], [496, 194], [439, 249], [394, 285], [484, 292]], np.float32)
    crop = align_face(img, kps)
    m = similarity_transform(kps, ARCFACE_TEMPLATE)
    ref = cv2.warpAffine(img, m, (112, 112))
    assert np.array_equal(crop, ref)
    assert crop.std() > 20  # a real face, not an empty canvas
