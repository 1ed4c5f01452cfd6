"""Head pose signs and ranges on real and geometrically transformed images."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.api.wire import details_json
from edge.vision.details import DetailAnalyzer
from edge.vision.types import DetailFlags
from tests.support.images import read_bgr

ANGLE = DetailFlags(angle=True, position=True)
FRONTAL = [
    "faces_by_identity/barack_obama/1.jpg",
    "faces_by_identity/angelina_jolie/1.jpg",
    "annotations/emotion/faceapi_neutral.jpg",
]
# Looked at: the nose points clearly to the image right in elton_john/7 and to the image
# left in ben_affleck/5 (landmarks drawn on both while building this).
TURNED_RIGHT = "faces_by_identity/elton_john/7.jpg"
TURNED_LEFT = "faces_by_identity/ben_affleck/5.jpg"


@pytest.fixture(scope="module")
def angle(analyzer: DetailAnalyzer, largest_face) -> Callable[[np.ndarray], dict]:
    def run(bgr: np.ndarray) -> dict:
        return details_json(analyzer.analyze(bgr, largest_face(bgr), ANGLE))

    return run


def _rotate(img: np.ndarray, deg: float) -> np.ndarray:
    """Counter-clockwise (as seen) rotation by `deg` about the image centre."""
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), deg, 1.0)
    return cv2.warpAffine(img, m, (w, h), borderMode=cv2.BORDER_REPLICATE)


@pytest.mark.parametrize("rel", FRONTAL)
def test_roll_follows_an_in_plane_rotation(angle, testdata: Path, rel: str) -> None:
    img = read_bgr(testdata / rel)
    r0 = angle(img)["angle"]["roll"]
    ccw = angle(_rotate(img, 20))["angle"]["roll"]
    cw = angle(_rotate(img, -20))["angle"]["roll"]
    assert abs(ccw - r0 - 20) < 4  # counter-clockwise = positive
    assert abs(cw - r0 + 20) < 4


def test_pixel_rotated_images_give_sideways_roll(angle, testdata: Path) -> None:
    # r90: the head's top points to the image right (turned clockwise) -> roll near -90.
    r90 = angle(read_bgr(testdata / "awkward/cai_xukun_pixels_rotated_r90.jpg"))["angle"]
    r270 = angle(read_bgr(testdata / "awkward/cai_xukun_pixels_rotated_r270.jpg"))["angle"]
    assert r90["roll"] < -75
    assert r270["roll"] > 75


def test_yaw_sign_and_mirror(angle, testdata: Path) -> None:
    right = read_bgr(testdata / TURNED_RIGHT)
    left = read_bgr(testdata / TURNED_LEFT)
    yr, yl = angle(right)["angle"]["yaw"], angle(left)["angle"]["yaw"]
    assert yr > 20 and yl < -20
    for img, y in ((right, yr), (left, yl)):
        ym = angle(cv2.flip(img, 1))["angle"]["yaw"]
        assert np.sign(ym) == -np.sign(y)
        assert abs(abs(ym) - abs(y)) < 10


def test_frontal_faces_are_near_zero(angle, testdata: Path) -> None:
    for rel in FRONTAL:
        a = angle(read_bgr(testdata / rel))["angle"]
        assert abs(a["yaw"]) < 15 and abs(a["roll"]) < 8 and abs(a["pitch"]) < 20


def test_block_shape_centre_and_range(angle, testdata: Path) -> None:
    for rel in [*FRONTAL, TURNED_RIGHT, "awkward/cai_xukun_pixels_rotated_r270.jpg"]:
        out = angle(read_bgr(testdata / rel))
        a, p = out["angle"], out["position"]
        assert set(a) == {"pitch", "yaw", "roll", "centerX", "centerY"}
        assert a["centerX"] == p["left"] + p["width"] // 2
        assert a["centerY"] == p["top"] + p["height"] // 2
        assert all(-90 <= a[k] <= 90 for k in ("pitch", "yaw", "roll"))


def test_pitch_and_yaw_signs_agree_with_face_geometry(
    analyzer: DetailAnalyzer, largest_face, testdata: Path
) -> None:
    """Over many portraits, API yaw rises with the nose tip's offset to the image right and
    API pitch with the nose tip dropping towards the mouth line (head down)."""
    files = sorted((testdata / "faces_by_identity").glob("*/[1-3].jpg"))[:40]
    yaw_cue, pitch_cue, yaws, pitches = [], [], [], []
    for path in files:
        img = read_bgr(path)
        face = largest_face(img)
        out = details_json(analyzer.analyze(img, face, DetailFlags(angle=True, landmarks=True)))
        pts = np.array([[p["x"], p["y"]] for p in out["landmarks"]], np.float64)
        e = pts[77] - pts[74]
        a = np.arctan2(e[1], e[0])
        rot = np.array([[np.cos(-a), -np.sin(-a)], [np.sin(-a), np.cos(-a)]])
        q = pts @ rot.T  # eye line horizontal
        yaw_cue.append((q[46, 0] - (q[0, 0] + q[32, 0]) / 2) / (q[32, 0] - q[0, 0]))
        eye_y, mouth_y = (q[74, 1] + q[77, 1]) / 2, (q[84, 1] + q[90, 1]) / 2
        pitch_cue.append((q[46, 1] - eye_y) / (mouth_y - eye_y))
        yaws.append(out["angle"]["yaw"])
        pitches.append(out["angle"]["pitch"])
    assert len(yaws) >= 30
    assert np.corrcoef(yaw_cue, yaws)[0, 1] > 0.7
    assert np.corrcoef(pitch_cue, pitches)[0, 1] > 0.4
