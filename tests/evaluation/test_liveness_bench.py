"""`edge-face bench liveness` runs end to end (figures are printed, never asserted)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from benchmarks import liveness as bench
from edge.config import Settings


def test_bench_prints_every_measurement_and_writes_json(
    session_settings: Settings, testdata: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bench.json"
    args = argparse.Namespace(data=testdata / "liveness", runs=3, out=out)
    assert bench.run(session_settings, args) == 0
    printed = capsys.readouterr().out
    for text in ("liveness stage / face", "baseline", "full frame 640x480", "peak RSS"):
        assert text in printed
    res = json.loads(out.read_text())
    assert res["frames"] >= 1
    assert res["fullFrame"]["p95"] >= res["fullFrame"]["p50"] > 0
    assert res["ratioBaselineOverOurs"] > 0


def test_baseline_agrees_with_the_scorer_on_what_is_spoof(
    session_settings: Settings, testdata: Path
) -> None:
    """The baseline must compute the same models on the same crops, or its timing is moot."""
    from edge.engine import Models
    from edge.evaluation.liveness import find_face
    from tests.support.images import read_bgr

    models = Models.load(session_settings)
    scorer, pipeline = models.liveness, models.pipeline
    assert scorer is not None
    base = bench.NaiveBaseline(models.registry, scorer)
    for name in ("live/doubango_genuine.jpg", "spoof/apfol_fake_510.png"):
        bgr = read_bgr(testdata / "liveness" / name)
        face, _ = find_face(bgr, pipeline)
        assert face is not None
        r = scorer.score(bgr, face)
        upstream = base(bgr, face)
        mean_live = 1 - (r.per_model["liveness_v2"] + r.per_model["liveness_v1se"]) / 2
        assert upstream == pytest.approx(1 - mean_live, abs=0.03)  # bf16 vs f32 at most
