"""Synthetic presentation attacks (edge/evaluation/attacks.py) on real photos and models."""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
import pytest

from edge.evaluation.attacks import ATTACKS, map_face, matched_framing, synthesize
from edge.vision.liveness import LivenessScorer
from edge.vision.types import Face


def _saturation(bgr: np.ndarray, face: Face) -> float:
    x1, y1, x2, y2 = (int(v) for v in face.box)
    hsv = cv2.cvtColor(bgr[max(y1, 0) : y2, max(x1, 0) : x2], cv2.COLOR_BGR2HSV)
    return float(hsv[..., 1].mean())


@pytest.mark.parametrize("kind", sorted(ATTACKS))
def test_same_seed_same_bytes_other_seed_other_attack(kind: str, genuine: np.ndarray) -> None:
    a, b = synthesize(genuine, kind, 7), synthesize(genuine, kind, 7)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.matrix, b.matrix)
    assert a.params == b.params
    c = synthesize(genuine, kind, 8)
    assert c.params != a.params
    assert a.image.dtype == np.uint8 and a.image.ndim == 3


@pytest.mark.parametrize("kind", sorted(ATTACKS))
@pytest.mark.parametrize("framing", ["scene", "matched"])
def test_face_is_carried_to_where_a_detector_finds_it(
    kind: str, framing: str, genuine: np.ndarray, largest_face: Callable[..., Face]
) -> None:
    """The affine map puts the landmarks where the detector sees them on the attack."""
    face = largest_face(genuine)
    att = synthesize(genuine, kind, 3)
    if framing == "matched":
        att = matched_framing(att, genuine.shape[1], genuine.shape[0])
    mapped = map_face(face, att.matrix)
    found = largest_face(att.image)
    eye_dist = float(np.linalg.norm(mapped.kps[1] - mapped.kps[0]))
    err = np.linalg.norm(found.kps - mapped.kps, axis=1).max()
    assert err < 0.25 * eye_dist, (err, eye_dist)  # detector landmark noise is ~0.1-0.17


def test_matched_framing_keeps_the_source_framing(
    genuine: np.ndarray, largest_face: Callable[..., Face]
) -> None:
    """The crop shows as much around the face as the source did, the scene more."""
    face = largest_face(genuine)
    h, w = genuine.shape[:2]
    scene = synthesize(genuine, "screen", 1)
    matched = matched_framing(scene, w, h)
    ratio = lambda img, f: img.shape[1] / (f.box[2] - f.box[0])  # noqa: E731
    src = ratio(genuine, face)
    assert ratio(matched.image, map_face(face, matched.matrix)) == pytest.approx(src, rel=0.08)
    assert ratio(scene.image, map_face(face, scene.matrix)) > 1.1 * src


def test_screen_scene_shows_a_dark_bezel_around_the_content(genuine: np.ndarray) -> None:
    att = synthesize(genuine, "screen", 2)
    h, w = genuine.shape[:2]
    m = att.matrix
    # Just outside the middle of the content's left and right edges: the device's bezel.
    for x, y in ((-6.0, h / 2), (w + 6.0, h / 2)):
        bx, by = m @ np.array([x, y, 1.0])
        assert att.image[int(by), int(bx)].mean() < 0.35 * 255 + 25  # dark, not the photo


@pytest.mark.parametrize("kind", sorted(ATTACKS))
def test_attack_loses_colour(
    kind: str, genuine: np.ndarray, largest_face: Callable[..., Face]
) -> None:
    """Gamut compression (screen) and ink colour loss (print) lower the face's saturation."""
    face = largest_face(genuine)
    att = synthesize(genuine, kind, 4)
    assert _saturation(att.image, map_face(face, att.matrix)) < 0.95 * _saturation(genuine, face)


def test_print_carries_a_halftone_screen(genuine: np.ndarray) -> None:
    """The dot screen puts energy at its pitch that the smooth source lacks."""
    att = synthesize(genuine, "print", 5)
    flat = matched_framing(att, genuine.shape[1], genuine.shape[0]).image
    gray = cv2.cvtColor(flat, cv2.COLOR_BGR2GRAY).astype(np.float64)
    src = cv2.resize(
        cv2.cvtColor(genuine, cv2.COLOR_BGR2GRAY), gray.shape[::-1], interpolation=cv2.INTER_AREA
    ).astype(np.float64)

    def high_band(g: np.ndarray) -> float:
        lap = cv2.Laplacian(g, cv2.CV_64F)
        return float(np.var(lap) / max(np.var(g), 1e-9))

    assert high_band(gray) > 1.5 * high_band(src)


@pytest.mark.parametrize("kind", sorted(ATTACKS))
def test_liveness_models_see_the_attacks(
    kind: str,
    genuine: np.ndarray,
    liveness_scorer: LivenessScorer,
    largest_face: Callable[..., Face],
) -> None:
    """The shipped liveness_scorer rates attacks of a genuine face as more spoof than the face.

    If the attacks were invisible to the models they could not widen the calibration.
    """
    face = largest_face(genuine)
    bona_fide = liveness_scorer.score(genuine, face).spoof_score
    scores = []
    for seed in range(3):
        att = synthesize(genuine, kind, seed)
        scores.append(liveness_scorer.score(att.image, map_face(face, att.matrix)).spoof_score)
    assert np.mean(scores) > bona_fide + 0.2, (bona_fide, scores)


def test_bad_input_is_refused_with_what_to_do(genuine: np.ndarray) -> None:
    with pytest.raises(ValueError, match="choose one of"):
        synthesize(genuine, "mask", 0)
    with pytest.raises(ValueError, match="BGR uint8"):
        synthesize(genuine.astype(np.float32), "print", 0)
    with pytest.raises(ValueError, match="BGR uint8"):
        synthesize(genuine[..., 0], "screen", 0)
