"""`edge-face eval` and its metrics, on the real labelled test folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge.cli import main as cli_main
from edge.evaluation.faces import _greedy_matches, _iou_matrix
from edge.evaluation.verification import roc_auc, tar_at_far, threshold_for_far
from edge.vision.similarity import load_calibration


def test_roc_auc_matches_brute_force() -> None:
    rng = np.random.default_rng(0)
    g = np.round(rng.normal(0.6, 0.2, 300), 2)  # rounding makes ties
    i = np.round(rng.normal(0.1, 0.2, 900), 2)
    brute = ((g[:, None] > i[None, :]).sum() + 0.5 * (g[:, None] == i[None, :]).sum()) / (
        len(g) * len(i)
    )
    assert roc_auc(g, i) == pytest.approx(brute, abs=1e-12)


@pytest.mark.parametrize("far", [1e-2, 1e-3, 1e-4])
def test_threshold_for_far_is_strict_and_tight(far: float) -> None:
    imp = np.random.default_rng(1).normal(0, 0.2, 50_000)
    t = threshold_for_far(imp, far)
    assert np.mean(imp >= t) <= far
    # The next impostor below t would already exceed the allowed rate.
    below = np.sort(imp[imp < t])[-1]
    assert np.mean(imp >= below) > far
    tar, t2 = tar_at_far(np.array([t - 1e-3, t + 1e-3]), imp, far)
    assert t2 == t and tar == 0.5


def test_greedy_matching_is_one_to_one() -> None:
    gt = np.array([[0, 0, 10, 10], [20, 0, 30, 10]], float)
    det = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]], float)
    iou = _iou_matrix(gt, det)
    assert _greedy_matches(iou, 0.5) == 1  # two detections on one face count once
    assert _greedy_matches(_iou_matrix(gt, gt), 0.99) == 2


@pytest.fixture(scope="module")
def eval_result(testdata: Path, model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("eval") / "faces.json"
    mp = pytest.MonkeyPatch()
    mp.setenv("EDGE_MODELS__DIR", str(model_dir))
    mp.setenv("EDGE_DATA_DIR", str(out.parent / "data"))
    try:
        rc = cli_main(
            ["eval", "--data", str(testdata), "--out", str(out), "--no-attributes", "--quiet"]
        )
    finally:
        mp.undo()
    assert rc == 0
    return json.loads(out.read_text())


# The 0.9 knot sits where this data's impostor tail crosses FAR 1e-4, chosen tight (the next
# impostor below it would already exceed the rate). Numeric precision moves cosines by ~1e-3:
# bf16 vs f32, and even f32 on AVX2 vs AVX-512 kernels, which measured FAR@0.9 at 7.2e-5 (f32,
# AVX-512), 9.1e-5 (bf16, AMX) and 1.005e-4 (f32, AVX2) on the same pairs. So the claim is
# checked to within this many impostor pairs, not to the exact count of one machine.
TAIL_PAIRS = 8


def test_eval_reports_strict_operating_point(eval_result: dict) -> None:
    overall = eval_result["verification"][0]
    assert overall["subset"] == "all"
    # The published threshold 0.9 keeps FAR <= 1e-4 on this data (the calibration claim).
    assert overall["far@0.9"] <= 1e-4 + TAIL_PAIRS / overall["impostor"]
    assert overall["impostor"] >= 10_000 and overall["genuine"] > 0
    assert 0.5 < overall["auc"] <= 1.0
    assert overall["tar@far=0.001"] >= overall["tar@far=0.0001"]
    kinds = {r["subset"] for r in eval_result["verification"][1:]}
    assert {"photo", "aligned_crop_112", "grayscale_studio_92x112"} <= kinds


def test_stored_calibration_matches_this_data(eval_result: dict) -> None:
    cal = load_calibration("default")
    overall = eval_result["verification"][0]
    assert overall["genuine"] == cal.measured.pairs["genuine"]
    assert overall["impostor"] == cal.measured.pairs["impostor"]
    # Same pairs, so counts are exact; rates within the precision tolerance above.
    assert overall["far@0.9"] == pytest.approx(cal.measured.far, abs=TAIL_PAIRS / cal_imp(cal))
    assert overall["tar@0.9"] == pytest.approx(cal.measured.tar, abs=0.01)


def cal_imp(cal: Any) -> int:
    return int(cal.measured.pairs["impostor"])


def test_eval_identification_and_detection(eval_result: dict) -> None:
    ident = eval_result["identification"]
    assert ident["gallery"] > 10 and ident["known_probes"] > 0 and ident["unknown_probes"] > 0
    assert 0 <= ident["rejection"] <= 1 and ident["false_accept"] == pytest.approx(
        1 - ident["rejection"]
    )
    rows = {r["detector"]: r for r in eval_result["detection"]}
    before, after = "detect_all, before (each side >=32px)", "detect_all (>=32px)"
    assert set(rows) == {"fast (raw)", "slow (raw)", before, after}
    for r in rows.values():
        assert 0 <= r["dlib recall@0.5"] <= r["dlib recall@0.4"] <= 1
        assert 0 <= r["group recall"] <= 1 and r["ms/image"] > 0
    # The size rule on the equal-area square: group faces come back, nothing else gets worse.
    b, a = rows[before], rows[after]
    assert a["group recall"] > b["group recall"] and a["dlib recall@0.4"] >= 17 / 18
    for key in ("dlib precision@0.4", "nose recall", "nose precision"):
        assert a[key] >= b[key], key
    counts = {c["image"]: c for c in eval_result["detection_counts"]}
    assert counts["fr_two_people.jpg"]["detect_all (>=32px)"] == 2
