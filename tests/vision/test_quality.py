"""Quality fields respond to the image property they claim to measure."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.api.wire import details_json
from edge.vision import quality as q
from edge.vision.details import DetailAnalyzer
from edge.vision.types import DetailFlags, Face
from tests.support.images import read_bgr

QUALITY = DetailFlags(quality=True)
PORTRAITS = [
    "faces_by_identity/barack_obama/1.jpg",
    "faces_by_identity/angelina_jolie/1.jpg",
    "annotations/emotion/faceapi_neutral.jpg",
]
MASKED = ["awkward/masked_face_1.jpg", "awkward/masked_face_2.jpeg", "awkward/masked_face_3.jpg"]


@pytest.fixture(scope="module")
def quality(analyzer: DetailAnalyzer, largest_face) -> Callable[..., dict]:
    def run(bgr: np.ndarray, face: Face | None = None) -> dict:
        return details_json(analyzer.analyze(bgr, face or largest_face(bgr), QUALITY))["quality"]

    return run


def test_all_fields_present_and_in_range(quality, testdata: Path) -> None:
    for rel in PORTRAITS + MASKED:
        qd = quality(read_bgr(testdata / rel))
        assert set(qd) == {
            "brightness", "sharpness", "mouthClosed", "centered", "size", "integrity",
            "completeness",
        }  # fmt: skip
        assert -1 <= qd["brightness"] <= 1
        for k in ("sharpness", "mouthClosed", "centered", "size", "integrity"):
            assert 0 <= qd[k] <= 1 and isinstance(qd[k], float)
        assert set(qd["completeness"]) == {
            "total", "leftEyeBrow", "rightEyeBrow", "leftEye", "rightEye", "nose", "mouth",
            "faceContour",
        }  # fmt: skip
        assert all(0 <= v <= 1 for v in qd["completeness"].values())


@pytest.mark.parametrize("rel", PORTRAITS)
def test_blur_lowers_sharpness(quality, largest_face, testdata: Path, rel: str) -> None:
    img = read_bgr(testdata / rel)
    face = largest_face(img)
    blurred = cv2.GaussianBlur(img, (0, 0), max(1.5, face.width / 50))
    sharp, soft = quality(img, face)["sharpness"], quality(blurred, face)["sharpness"]
    assert soft < sharp - 0.2


@pytest.mark.parametrize("rel", PORTRAITS)
def test_darkening_lowers_brightness(quality, largest_face, testdata: Path, rel: str) -> None:
    img = read_bgr(testdata / rel)
    face = largest_face(img)
    b0 = quality(img, face)["brightness"]
    dark = quality((img * 0.4).astype(np.uint8), face)["brightness"]
    light = quality(cv2.convertScaleAbs(img, alpha=1.0, beta=60), face)["brightness"]
    assert dark < b0 - 0.2 < b0 + 0.2 < light + 0.2
    assert dark < 0


def test_mask_lowers_nose_and_mouth_completeness(quality, testdata: Path) -> None:
    masked = [quality(read_bgr(testdata / r))["completeness"] for r in MASKED]
    plain = [quality(read_bgr(testdata / r))["completeness"] for r in PORTRAITS]
    for part in ("nose", "mouth"):
        # Visible parts read about 0.9 (their border contrast, see occlusion.py), not 1.
        assert max(c[part] for c in masked) < 0.3 < 0.7 < min(c[part] for c in plain)
    assert max(c["total"] for c in masked) < min(c["total"] for c in plain)


def test_open_mouth_scores_lower_mouth_closed(quality, yale, testdata: Path) -> None:
    emo = testdata / "annotations/emotion"
    # One pair of photos: the inner-lip landmarks move by a pixel or two between numeric
    # precisions and CPU kernels (measured gaps 0.27 to 0.30 across machines), so the single
    # pair gets a wide margin and the Yale sets below carry the stricter, averaged claim.
    assert (
        quality(read_bgr(emo / "faceapi_surprised.jpg"))["mouthClosed"]
        < quality(read_bgr(emo / "faceapi_neutral.jpg"))["mouthClosed"] - 0.15
    )
    surprised = [quality(read_bgr(p))["mouthClosed"] for p in yale("surprised")]
    normal = [quality(read_bgr(p))["mouthClosed"] for p in yale("normal")]
    assert len(surprised) >= 5 and len(normal) >= 3
    assert np.mean(surprised) < np.mean(normal) - 0.2


def test_closed_eyes_lower_eye_completeness(quality, yale) -> None:
    sleepy = [quality(read_bgr(p))["completeness"] for p in yale("sleepy")]
    normal = [quality(read_bgr(p))["completeness"] for p in yale("normal")]
    eyes = lambda cs: np.mean([(c["leftEye"] + c["rightEye"]) / 2 for c in cs])  # noqa: E731
    assert eyes(sleepy) < 0.3 < 0.6 < eyes(normal)


def test_face_cut_by_border_lowers_integrity(quality, testdata: Path) -> None:
    full = quality(read_bgr(testdata / "faces_by_identity/barack_obama/1.jpg"))
    assert full["integrity"] > 0.99
    for rel in ("awkward/obama_partial_face.jpg", "awkward/obama_partial_face2.jpg"):
        cut = quality(read_bgr(testdata / rel))
        assert cut["integrity"] < 0.95
        assert cut["completeness"]["faceContour"] < full["completeness"]["faceContour"]


def test_size_and_centered_follow_the_face_placement(quality, largest_face, testdata: Path) -> None:
    """The same face pasted into the middle / the corner of a 3x canvas (same box, shifted,
    so the detector's own jitter stays out of the comparison)."""
    img = read_bgr(testdata / "faces_by_identity/barack_obama/1.jpg")
    face = largest_face(img)
    h, w = img.shape[:2]

    def shifted(dx: int, dy: int) -> Face:
        off = np.array([dx, dy], np.float32)
        return Face(np.concatenate([face.box[:2] + off, face.box[2:] + off]), face.score,
                    face.kps + off)  # fmt: skip

    centred = np.zeros((3 * h, 3 * w, 3), np.uint8)
    centred[h : 2 * h, w : 2 * w] = img
    corner = np.zeros((3 * h, 3 * w, 3), np.uint8)
    corner[:h, :w] = img
    q0, qc, qk = quality(img, face), quality(centred, shifted(w, h)), quality(corner, face)
    assert qc["size"] == pytest.approx(q0["size"] / 9, rel=0.1)
    assert qk["size"] == pytest.approx(qc["size"], rel=0.1)
    assert qc["centered"] > max(q0["centered"], 0.8) > 0.4 > qk["centered"]


@given(
    st.floats(-300, 900), st.floats(-300, 900), st.floats(5, 600), st.floats(5, 600),
    st.integers(50, 800), st.integers(50, 800),
)  # fmt: skip
def test_geometry_fields_stay_in_range(x: float, y: float, bw: float, bh: float, w: int, h: int):
    box = np.array([x, y, x + bw, y + bh], np.float32)
    face = Face(box, 1.0, np.zeros((5, 2), np.float32))
    pts = np.stack([np.linspace(x, x + bw, 106), np.linspace(y, y + bh, 106)], 1)
    inside = max(min(x + bw, w) - max(x, 0), 0) * max(min(y + bh, h) - max(y, 0), 0)
    assert 0 <= q.centered(face, w, h) <= 1
    assert q.size(face, w, h) == pytest.approx(min(inside / (w * h), 1.0), abs=1e-4)
    assert q.integrity(face, w, h, pts.astype(np.float32)) == pytest.approx(
        inside / (bw * bh), abs=1e-3
    )
