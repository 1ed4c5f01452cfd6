"""`edge-face eval liveness`: metrics checked against brute-force recomputation."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.config import Settings
from edge.evaluation import liveness as ev
from edge.vision.errors import NoFaceFound


def _brute_auc(live: np.ndarray, spoof: np.ndarray) -> float:
    wins = sum((s > l) + 0.5 * (s == l) for s in spoof for l in live)  # noqa: E741
    return wins / (len(live) * len(spoof))


scores = st.lists(
    st.sampled_from([round(v, 2) for v in np.linspace(0, 1, 41)]), min_size=1, max_size=40
)


@settings(max_examples=150, deadline=None)
@given(live=scores, spoof=scores)
def test_auc_equals_pairwise_count(live: list[float], spoof: list[float]) -> None:
    a, b = np.array(live), np.array(spoof)
    assert ev.roc_auc(a, b) == pytest.approx(_brute_auc(a, b), abs=1e-12)


@settings(max_examples=150, deadline=None)
@given(live=scores, spoof=scores, thr=st.floats(0, 1))
def test_error_rates_count_decisions(live: list[float], spoof: list[float], thr: float) -> None:
    a, b = np.array(live), np.array(spoof)
    r = ev.error_rates(a, b, thr)
    assert r["apcer"] == sum(s < thr for s in spoof) / len(spoof)
    assert r["bpcer"] == sum(v >= thr for v in live) / len(live)
    assert r["acer"] == pytest.approx((r["apcer"] + r["bpcer"]) / 2)


@settings(max_examples=150, deadline=None)
@given(live=scores, spoof=scores)
def test_bpcer_threshold_is_the_lowest_that_meets_the_target(
    live: list[float], spoof: list[float]
) -> None:
    a, b = np.array(live), np.array(spoof)
    t = ev.threshold_for_bpcer(a, b, 0.05)
    assert ev.error_rates(a, b, t)["bpcer"] <= 0.05
    # Every lower candidate (any observed score below it) misses the target, so no
    # threshold with a lower APCER meets it.
    for c in np.unique(np.concatenate([a, b])):
        if c < t:
            assert ev.error_rates(a, b, float(c))["bpcer"] > 0.05


def test_eval_command_runs_on_the_folder_and_reports_consistent_metrics(
    session_settings: Settings,
    testdata: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "liveness.json"
    args = argparse.Namespace(data=testdata / "liveness", out=out, threshold=None)
    assert ev.run(session_settings, args) == 0
    printed = capsys.readouterr().out
    assert "APCER" in printed and "all scored images" in printed
    rep = json.loads(out.read_text())

    # Every image is accounted for: scored, or listed as not scored.
    files = [p for d in ("live", "spoof") for p in (testdata / "liveness" / d).iterdir()]
    rows = rep["rows"]
    assert len(rows) == len(files)
    assert sorted(r["file"] for r in rows if r["spoof_score"] is None) == sorted(rep["notScored"])
    found = rep["faceFound"]
    assert sum(sum(c.values()) for c in found.values()) == len(files)

    # Brute-force recomputation from the per-image rows.
    thr = rep["threshold"]
    live = [r["spoof_score"] for r in rows if r["label"] == "live" and r["spoof_score"] is not None]
    spoof = [
        r["spoof_score"] for r in rows if r["label"] == "spoof" and r["spoof_score"] is not None
    ]
    o = rep["overall"]
    assert o["samples"] == {"live": len(live), "spoof": len(spoof)}
    assert o["apcer"] == pytest.approx(sum(s < thr for s in spoof) / len(spoof))
    assert o["bpcer"] == pytest.approx(sum(v >= thr for v in live) / len(live))
    assert o["acer"] == pytest.approx((o["apcer"] + o["bpcer"]) / 2)
    assert o["auc"] == pytest.approx(_brute_auc(np.array(live), np.array(spoof)))
    t5 = rep["thresholdForBpcer5"]
    assert sum(v >= t5["threshold"] for v in live) / len(live) <= 0.05
    assert t5["apcer"] == pytest.approx(sum(s < t5["threshold"] for s in spoof) / len(spoof))

    # Per-source figures add up to the overall sample counts.
    per = rep["perSource"].values()
    assert sum(p["samples"]["live"] for p in per) == len(live)
    assert sum(p["samples"]["spoof"] for p in per) == len(spoof)
    assert "Apfol/liveness-detection-opencv" in rep["perSource"]


def test_samples_are_labelled_from_sources_json(testdata: Path) -> None:
    samples = ev.load_samples(testdata / "liveness")
    by_name = {s.path.name: s for s in samples}
    assert by_name["doubango_spoof.jpg"].label == "spoof"
    assert by_name["doubango_spoof.jpg"].source.startswith("DoubangoTelecom/")
    assert by_name["apfol_real_0.png"].label == "live"
    assert "replay" in (by_name["apfol_fake_0.png"].attack or "")


def test_empty_folder_is_an_error(
    tmp_path: Path, session_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(FileNotFoundError):
        ev.load_samples(tmp_path)
    args = argparse.Namespace(data=tmp_path, out=tmp_path / "r.json", threshold=None)
    assert ev.run(session_settings, args) == 2
    assert "no images" in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()


def test_tight_crop_face_is_found_and_mapped_to_the_original_pixels(
    make_settings: Callable[..., Settings], testdata: Path
) -> None:
    from edge.engine import Models
    from tests.support.images import read_bgr

    pipeline = Models.load(make_settings()).pipeline
    bgr = read_bgr(testdata / "liveness" / "spoof" / "apfol_fake_0.png")
    face, how = ev.find_face(bgr, pipeline)
    assert face is not None and how in ("direct", "padded")
    h, w = bgr.shape[:2]
    assert 0 <= face.box[0] < face.box[2] <= w and 0 <= face.box[1] < face.box[3] <= h


def test_face_missed_on_a_tight_crop_is_found_on_a_padded_copy(
    make_settings: Callable[..., Settings], testdata: Path
) -> None:
    """With the research pack's detectors this replay crop needs the black border."""
    from edge.engine import Models
    from tests.support.images import read_bgr

    pipeline = Models.load(make_settings(models={"pack": "research-nc"})).pipeline
    bgr = read_bgr(testdata / "liveness" / "spoof" / "apfol_fake_10.png")
    with pytest.raises(NoFaceFound):
        pipeline.analyze_largest(bgr, embed=False)
    face, how = ev.find_face(bgr, pipeline)
    assert how == "padded" and face is not None
    h, w = bgr.shape[:2]
    assert 0 <= face.box[0] < face.box[2] <= w and 0 <= face.box[1] < face.box[3] <= h
    # keypoints mapped back too: the eyes lie inside the original image
    assert (face.kps[:2] >= 0).all() and (face.kps[:2, 0] < w).all() and (face.kps[:2, 1] < h).all()
