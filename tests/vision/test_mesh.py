"""The 468-point mesh, per-part completeness from image evidence, the mask attribute on
every face. Real models on real photos; occlusions are drawn on the real faces."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.api.wire import details_json
from edge.evaluation.occlusion import draw
from edge.vision.details import DetailAnalyzer
from edge.vision.mesh import LEFT_EYE_CORNERS, RIGHT_EYE_CORNERS, Mesh
from edge.vision.types import DetailFlags, Face
from tests.support.images import read_bgr

PORTRAITS = [
    "faces_by_identity/barack_obama/1.jpg",
    "faces_by_identity/angelina_jolie/1.jpg",
    "annotations/emotion/faceapi_neutral.jpg",
    "faces_by_identity/elon_musk/1.jpg",
    "faces_by_identity/drew_barrymore/1.png",
]
QUALITY = DetailFlags(quality=True)
ATTRS = DetailFlags(attributes=True)


@pytest.fixture(scope="module")
def completeness(analyzer: DetailAnalyzer) -> Callable[[np.ndarray, Face], dict[str, float]]:
    def run(bgr: np.ndarray, face: Face) -> dict[str, float]:
        out: dict[str, float] = details_json(analyzer.analyze(bgr, face, QUALITY))["quality"][
            "completeness"
        ]
        return out

    return run


def _mesh(analyzer: DetailAnalyzer, bgr: np.ndarray, face: Face) -> Mesh:
    assert analyzer.has_mesh, "the default pack carries the landmarks468 role"
    return analyzer.mesh.predict(bgr, face)


def _eye_centres(mesh: Mesh) -> np.ndarray:
    return np.array(
        [mesh.points[list(LEFT_EYE_CORNERS)].mean(0), mesh.points[list(RIGHT_EYE_CORNERS)].mean(0)]
    )


@pytest.mark.parametrize(
    "rel",
    [*PORTRAITS[:2], "awkward/cai_xukun_pixels_rotated_r90.jpg", "awkward/hopper_gray.jpg"],
)
def test_mesh_lands_on_the_face_in_image_coordinates(
    analyzer: DetailAnalyzer, largest_face, testdata: Path, rel: str
) -> None:
    """Eye-corner midpoints of the mesh fall on the detector's eye keypoints (image-left
    eye on image-left keypoint), also on a face turned 90 degrees in the pixels."""
    bgr = read_bgr(testdata / rel)
    face = largest_face(bgr)
    mesh = _mesh(analyzer, bgr, face)
    assert mesh.points.shape == (468, 2) and mesh.crop_points.shape == (468, 3)
    assert mesh.presence > 0.5
    iod = float(np.linalg.norm(face.kps[1] - face.kps[0]))
    err = np.linalg.norm(_eye_centres(mesh) - face.kps[:2], axis=1) / iod
    assert err.max() < 0.25, err


def test_completeness_differs_between_faces(
    analyzer: DetailAnalyzer, largest_face, completeness, testdata: Path
) -> None:
    """Eyebrows and contour used to read 1.0 on every face in the image: now a measurement."""
    values = []
    for rel in PORTRAITS:
        bgr = read_bgr(testdata / rel)
        values.append(completeness(bgr, largest_face(bgr)))
    for part in ("leftEyeBrow", "rightEyeBrow", "faceContour", "nose", "mouth"):
        got = [v[part] for v in values]
        assert len(set(got)) == len(got), (part, got)
        assert all(0.0 < g <= 1.0 for g in got), (part, got)
        assert max(got) > 0.6, (part, got)  # visible parts of clear portraits read high


def _changes(
    analyzer: DetailAnalyzer, largest_face, completeness, testdata: Path, kind: str
) -> list[tuple[dict[str, float], dict[str, float]]]:  # type: ignore[no-untyped-def]
    """(before, after) completeness of each portrait, the occlusion drawn on the real face."""
    out = []
    for rel in PORTRAITS:
        bgr = read_bgr(testdata / rel)
        face = largest_face(bgr)
        occluded = draw(bgr, _mesh(analyzer, bgr, face).points, kind)
        out.append((completeness(bgr, face), completeness(occluded, face)))
    return out


def _check(pairs, hidden: tuple[str, ...], steady: tuple[str, ...]) -> None:  # type: ignore[no-untyped-def]
    """Hidden parts fall (on average by half, on 4 of 5 faces by 0.3 or more); the parts
    the occluder leaves alone move little on average. Eyes are left out of "steady": the
    eye-state CNN's eye patch follows the 106 landmarks, which shift under any occluder."""
    drops = np.array([[b[p] - a[p] for p in hidden] for b, a in pairs])
    assert drops.mean() > 0.5, drops
    assert (drops.mean(axis=1) >= 0.3).sum() >= len(pairs) - 1, drops
    moves = np.array([[abs(b[p] - a[p]) for p in steady] for b, a in pairs])
    assert moves.mean() < 0.1, moves


@pytest.mark.parametrize("kind", ["dark bar over eyebrows", "skin bar over eyebrows"])
def test_bar_over_eyebrows_lowers_the_eyebrows_only(
    analyzer: DetailAnalyzer, largest_face, completeness, testdata: Path, kind: str
) -> None:
    pairs = _changes(analyzer, largest_face, completeness, testdata, kind)
    _check(pairs, ("leftEyeBrow", "rightEyeBrow"), ("nose", "mouth"))


def test_mask_patch_lowers_mouth_and_nose_not_the_eyebrows(
    analyzer: DetailAnalyzer, largest_face, completeness, testdata: Path
) -> None:
    pairs = _changes(analyzer, largest_face, completeness, testdata, "mask patch")
    _check(pairs, ("nose", "mouth"), ("leftEyeBrow", "rightEyeBrow"))
    assert np.mean([b["faceContour"] - a["faceContour"] for b, a in pairs]) > 0.1


def test_mask_attribute_on_every_face(analyzer: DetailAnalyzer, detectors, testdata: Path) -> None:  # type: ignore[no-untyped-def]
    """Includes a face at the image border that the frame-level mask detector finds no
    anchor for (inspireface_7242): the face's own crop decides instead of omitting it."""
    fast, slow = detectors
    rels = [
        "annotations/attributes/inspireface_7242.jpg",
        "awkward/masked_face_2.jpeg",
        "awkward/masked_face_3.jpg",
        "multi_face/compreface_000_5.jpg",
    ]
    unmatched = 0
    for rel in rels:
        bgr = read_bgr(testdata / rel)
        faces = fast.detect(bgr) or slow.detect(bgr)
        assert faces
        for face in faces:
            unmatched += analyzer.mask.match(bgr, face) is None
            attrs = details_json(analyzer.analyze(bgr, face, ATTRS))["attributes"]
            assert attrs["mask"]["value"] in ("with_mask", "without_mask"), rel
            assert 0.5 <= attrs["mask"]["certainty"] <= 1.0
    assert unmatched >= 1, "the set must exercise the face-crop path"


def test_mask_from_the_face_crop_is_right(
    analyzer: DetailAnalyzer, largest_face, testdata: Path
) -> None:
    """`classify` alone (the fallback) on faces of known label."""
    for rel, masked in [*((p, False) for p in PORTRAITS), ("awkward/masked_face_2.jpeg", True)]:
        bgr = read_bgr(testdata / rel)
        hit = analyzer.mask.classify(bgr, largest_face(bgr))
        assert (hit.mask_share >= 0.5) == masked, (rel, hit)


def test_mesh_crop_follows_the_eye_line(
    analyzer: DetailAnalyzer, largest_face, testdata: Path
) -> None:
    """Rotating the photo 25 degrees leaves the mesh's upright crop upright: the crop-space
    eye line stays horizontal, so the per-part measures see the same face."""
    bgr = read_bgr(testdata / PORTRAITS[0])
    h, w = bgr.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), 25, 1.0)
    turned = cv2.warpAffine(bgr, m, (w, h))
    mesh = _mesh(analyzer, turned, largest_face(turned))
    d = mesh.crop_points[RIGHT_EYE_CORNERS[0], :2] - mesh.crop_points[LEFT_EYE_CORNERS[0], :2]
    assert abs(math.degrees(math.atan2(d[1], d[0]))) < 6.0
