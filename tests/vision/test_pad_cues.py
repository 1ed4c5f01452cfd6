"""Model-free presentation-attack cues (edge/vision/pad_cues.py) and their place in the fusion,
on real photos, real replay frames, real synthetic attacks and the real liveness models."""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge.config import Settings
from edge.evaluation.attacks import map_face, matched_framing, synthesize
from edge.evaluation.liveness_common import load_samples
from edge.runtime.registry import ModelRegistry
from edge.vision.liveness import DATA_DIR, LivenessParams, LivenessScorer, live_logodds
from edge.vision.pad_cues import CUE_SIGNS, CUES
from edge.vision.types import Face
from tests.support.images import read_bgr

APFOL = "Apfol/liveness-detection-opencv"  # a real replay-attack video and its live twin


def _doc() -> dict[str, Any]:
    return dict(json.loads((DATA_DIR / "liveness_default.json").read_text(encoding="utf-8")))


def _with_cues(weights: dict[str, float]) -> dict[str, Any]:
    d = copy.deepcopy(_doc())
    d["schema"] = 2
    d["fusion"]["cues"] = {n: {"mean": 0.3, "scale": 0.5, "weight": w} for n, w in weights.items()}
    return d


def test_every_cue_is_measured_and_finite(
    genuine: np.ndarray, liveness_scorer: LivenessScorer, largest_face: Callable[..., Face]
) -> None:
    cues = liveness_scorer.cue_values(genuine, largest_face(genuine))
    assert tuple(cues) == CUES
    assert all(math.isfinite(v) for v in cues.values())
    assert 0.0 <= cues["blackLevel"] <= 1.0 and 0.0 <= cues["saturation"] <= 1.0


def test_a_screen_replay_raises_the_moire_cue(
    genuine: np.ndarray, liveness_scorer: LivenessScorer, largest_face: Callable[..., Face]
) -> None:
    """The re-sampled pixel grid puts a spectral peak into the face's fine detail."""
    face = largest_face(genuine)
    bona_fide = liveness_scorer.cue_values(genuine, face)["moire"]
    h, w = genuine.shape[:2]
    replays = []
    for seed in range(5):
        att = matched_framing(synthesize(genuine, "screen", seed), w, h)
        replays.append(liveness_scorer.cue_values(att.image, map_face(face, att.matrix))["moire"])
    assert np.mean(replays) > bona_fide + 0.5, (bona_fide, replays)
    assert sum(v > bona_fide for v in replays) >= 4, (bona_fide, replays)


def test_a_print_lowers_the_saturation_cue(
    genuine: np.ndarray, liveness_scorer: LivenessScorer, largest_face: Callable[..., Face]
) -> None:
    face = largest_face(genuine)
    bona_fide = liveness_scorer.cue_values(genuine, face)["saturation"]
    for seed in range(5):
        att = synthesize(genuine, "print", seed)
        sat = liveness_scorer.cue_values(att.image, map_face(face, att.matrix))["saturation"]
        assert sat < bona_fide, (seed, sat, bona_fide)


def test_a_device_in_the_context_raises_the_frame_lines_cue(
    genuine: np.ndarray, liveness_scorer: LivenessScorer, largest_face: Callable[..., Face]
) -> None:
    face = largest_face(genuine)
    bona_fide = liveness_scorer.cue_values(genuine, face)["frameLines"]
    for seed in range(3):
        att = synthesize(genuine, "screen", seed)  # the whole scene: bezel and room
        lines = liveness_scorer.cue_values(att.image, map_face(face, att.matrix))["frameLines"]
        assert lines > 1.5 * bona_fide, (seed, lines, bona_fide)


def test_real_replay_frames_read_as_the_physics_predicts(
    testdata: Path, liveness_scorer: LivenessScorer, largest_face: Callable[..., Face]
) -> None:
    """On a real replay video (not a synthetic one) the screen's moire and glowing black
    show against the live video of the same setup."""
    samples = [s for s in load_samples(testdata / "liveness") if s.source == APFOL]
    by_label: dict[str, list[dict[str, float]]] = {"live": [], "spoof": []}
    for s in samples[::4]:
        bgr = read_bgr(s.path)
        by_label[s.label].append(liveness_scorer.cue_values(bgr, largest_face(bgr)))
    assert len(by_label["live"]) >= 10 and len(by_label["spoof"]) >= 10
    mean = {k: {c: np.mean([v[c] for v in vs]) for c in CUES} for k, vs in by_label.items()}
    assert mean["spoof"]["moire"] > mean["live"]["moire"]
    assert mean["spoof"]["blackLevel"] > mean["live"]["blackLevel"] + 0.05


# ------------------------------------------------------------------------------------------
# Parameters
# ------------------------------------------------------------------------------------------
def test_a_schema_1_file_still_loads_without_cues() -> None:
    d = copy.deepcopy(_doc())
    d["schema"] = 1
    d["fusion"].pop("cues", None)
    p = LivenessParams.from_dict(d)
    assert p.cues == ()
    assert p.weights == tuple(d["fusion"]["weights"][m["role"]] for m in d["models"])


def test_cues_load_in_file_order_with_their_numbers() -> None:
    p = LivenessParams.from_dict(_with_cues({"saturation": -0.4, "moire": 0.7}))
    assert [(c.name, c.mean, c.scale, c.weight) for c in p.cues] == [
        ("saturation", 0.3, 0.5, -0.4),
        ("moire", 0.3, 0.5, 0.7),
    ]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["fusion"]["cues"].update(glare={"mean": 0, "scale": 1, "weight": 1}), "glare"),
        (lambda d: d["fusion"]["cues"]["moire"].update(weight=-1.0), "against its physics"),
        (lambda d: d["fusion"]["cues"]["moire"].update(scale=0.0), "scale > 0"),
        (lambda d: d.update(schema=1), "needs schema 2"),
        (lambda d: d.update(schema=3), "update edge"),
    ],
)
def test_bad_cue_parameters_are_refused_with_what_to_do(
    edit: Callable[[dict[str, Any]], None], message: str
) -> None:
    d = _with_cues({"moire": 0.5})
    edit(d)
    with pytest.raises(ValueError, match=message):
        LivenessParams.from_dict(d)


def test_the_shipped_files_load() -> None:
    for pack in ("default", "research-nc"):
        p = LivenessParams.load(pack)
        for c in p.cues:
            assert c.weight * CUE_SIGNS[c.name] >= 0  # never read against the physics


# ------------------------------------------------------------------------------------------
# Fusion
# ------------------------------------------------------------------------------------------
def test_the_fusion_adds_each_cue_to_the_log_odds(
    genuine: np.ndarray,
    registry: ModelRegistry,
    session_settings: Settings,
    largest_face: Callable[..., Face],
) -> None:
    face = largest_face(genuine)
    weights = {"moire": 0.6, "blackLevel": 0.9, "saturation": -0.5, "frameLines": 0.3}
    params = LivenessParams.from_dict(_with_cues(weights))
    liveness_scorer = LivenessScorer(registry, session_settings, params)
    res = liveness_scorer.score(genuine, face)
    logits = liveness_scorer.logits(genuine, face)
    cues = liveness_scorer.cue_values(genuine, face)
    z = params.bias + sum(
        w * float(live_logodds(np.asarray(logits[m.role]).reshape(1, -1), m.live_index)[0])
        for m, w in zip(params.models, params.weights, strict=True)
    )
    z += sum(w * (cues[n] - 0.3) / 0.5 for n, w in weights.items())
    assert res.spoof_score == pytest.approx(1 / (1 + math.exp(-z)), rel=1e-9)
    # more attack evidence from a cue raises the score; the models' own scores stay theirs
    more = dict(cues, blackLevel=cues["blackLevel"] + 0.2)
    assert liveness_scorer.score_logits(logits, more)[0] > res.spoof_score
    plain = LivenessScorer(registry, session_settings, LivenessParams.from_dict(_doc()))
    assert res.per_model == pytest.approx(plain.score(genuine, face).per_model)


def test_a_cue_fusion_refuses_to_score_without_cues(
    genuine: np.ndarray,
    registry: ModelRegistry,
    session_settings: Settings,
    largest_face: Callable[..., Face],
) -> None:
    liveness_scorer = LivenessScorer(
        registry, session_settings, LivenessParams.from_dict(_with_cues({"moire": 0.5}))
    )
    with pytest.raises(ValueError, match="cue_values"):
        liveness_scorer.score_logits(liveness_scorer.logits(genuine, largest_face(genuine)))


def test_only_the_cues_asked_for_are_measured(
    genuine: np.ndarray, liveness_scorer: LivenessScorer, largest_face: Callable[..., Face]
) -> None:
    face = largest_face(genuine)
    every = liveness_scorer.cue_values(genuine, face)
    some = liveness_scorer.cue_values(genuine, face, ["saturation", "moire"])
    assert set(some) == {"saturation", "moire"}
    assert some == {k: every[k] for k in some}  # same numbers, whatever else is measured
    with pytest.raises(ValueError, match="known"):
        liveness_scorer.cue_values(genuine, face, ["glare"])
