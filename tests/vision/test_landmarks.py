"""106-point landmarks: the API order checked geometrically on real faces."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.api.wire import details_json
from edge.runtime.registry import ModelRegistry
from edge.vision.landmarks import GROUPS, LandmarkModel, api_from_model
from edge.vision.types import FaceDetails
from tests.support.images import read_bgr
from tests.vision.vision_helpers import FRONTAL


@pytest.fixture(scope="module")
def model(registry: ModelRegistry) -> LandmarkModel:
    return LandmarkModel(registry)


def test_package_mapping_is_the_spec_permutation(shared_dir: Path) -> None:
    spec = json.loads((shared_dir / "spec" / "landmarks106_insightface_to_jd.json").read_text())
    perm = api_from_model()
    assert perm.tolist() == spec["jd_from_insightface"]
    assert sorted(perm.tolist()) == list(range(106))


def test_output_is_106_int_points(model, largest_face, testdata: Path) -> None:
    img = read_bgr(testdata / FRONTAL[0])
    pts = model.predict(img, largest_face(img))
    assert pts.shape == (106, 2)
    js = details_json(FaceDetails(landmarks=pts))["landmarks"]
    assert isinstance(js, list)
    assert len(js) == 106
    assert all(set(p) == {"x", "y"} and all(type(v) is int for v in p.values()) for p in js)


@pytest.mark.parametrize("rel", FRONTAL)
def test_groups_sit_on_their_face_parts(model, largest_face, testdata: Path, rel: str) -> None:
    img = read_bgr(testdata / rel)
    face = largest_face(img)
    pts = model.predict(img, face)
    kps = face.kps.astype(np.float64)
    iod = float(np.linalg.norm(kps[1] - kps[0]))
    assert kps[0, 0] < kps[1, 0]  # detector's first eye is the image-left one

    def near(group: str, centre: np.ndarray, radius: float) -> None:
        d = np.linalg.norm(pts[list(GROUPS[group])] - centre, axis=1)
        assert d.max() < radius * iod, f"{group} strays {d.max() / iod:.2f} IOD from {centre}"

    # Each eye ring (8 points + centre) hugs the detector's eye on the same image side.
    near("leftEye", kps[0], 0.45)
    near("rightEye", kps[1], 0.45)
    # Eye centres 74 / 77 are the closest to their own eye, not the other one.
    assert np.linalg.norm(pts[74] - kps[0]) < np.linalg.norm(pts[74] - kps[1])
    assert np.linalg.norm(pts[77] - kps[1]) < np.linalg.norm(pts[77] - kps[0])
    near("nose", kps[2], 0.75)
    # Brows above their eyes, on the same side.
    for brow, eye in (("leftEyeBrow", "leftEye"), ("rightEyeBrow", "rightEye")):
        assert pts[list(GROUPS[brow]), 1].mean() < pts[list(GROUPS[eye]), 1].mean()
    assert pts[list(GROUPS["leftEyeBrow"]), 0].mean() < pts[list(GROUPS["rightEyeBrow"]), 0].mean()
    # Mouth points inside the box spanned by the detector's mouth corners (grown).
    mw = float(np.linalg.norm(kps[4] - kps[3]))
    mouth = pts[list(GROUPS["mouth"])]
    lo = np.minimum(kps[3], kps[4]) - np.array([0.3 * mw, 0.45 * mw])
    hi = np.maximum(kps[3], kps[4]) + np.array([0.3 * mw, 0.6 * mw])
    assert ((mouth >= lo) & (mouth <= hi)).all()
    assert pts[84, 0] < pts[90, 0]  # 84 image-left corner
    # Contour 0 -> 32: image-left temple, over the chin (16), to the image-right temple.
    assert pts[0, 0] < pts[16, 0] < pts[32, 0]
    assert pts[8, 0] < pts[16, 0] < pts[24, 0]
    assert (pts[:16, 0] < pts[16, 0]).all() and (pts[17:33, 0] > pts[16, 0]).all()
    assert pts[16, 1] == pts[:33, 1].max() or pts[16, 1] > pts[[8, 24], 1].max()
    assert pts[0, 1] < pts[16, 1] and pts[32, 1] < pts[16, 1]
    assert pts[0, 0] < kps[0, 0] and pts[32, 0] > kps[1, 0]


def test_sideways_face_gives_the_rotated_landmarks(model, largest_face, testdata: Path) -> None:
    """Turning the image by 90 deg moves the landmarks with it (upright crop at work)."""
    img = read_bgr(testdata / FRONTAL[0])
    pts = model.predict(img, largest_face(img))
    turned = cv2.rotate(img, cv2.ROTATE_90_CLOCKWISE)
    face_t = largest_face(turned)
    h = img.shape[0]
    expected = np.stack([h - 1 - pts[:, 1], pts[:, 0]], axis=1)  # (x, y) -> (h-1-y, x)
    iod = float(np.linalg.norm(pts[77] - pts[74]))

    def err(p: np.ndarray) -> float:
        return float(np.linalg.norm(p - expected, axis=1).mean() / iod)

    upright = err(model.predict(turned, face_t))
    unturned = err(model._run(turned, face_t, 0.0))  # the model fed the sideways crop as is
    assert upright < 0.15, f"mean error {upright:.3f} IOD"
    assert unturned > 2 * upright
