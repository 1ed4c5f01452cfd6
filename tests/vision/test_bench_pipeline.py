"""`edge-face bench pipeline` runs end to end (a smoke run; the figures are not asserted)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge.cli import main as cli_main


def test_bench_pipeline_runs_and_reports(
    testdata: Path, model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("EDGE_MODELS__DIR", str(model_dir))
    monkeypatch.setenv("EDGE_DATA_DIR", str(tmp_path / "data"))
    out = tmp_path / "bench.json"
    rc = cli_main(
        [
            "bench",
            "pipeline",
            "--data",
            str(testdata),
            "--runs",
            "3",
            "--warmup",
            "1",
            "--images",
            "2",
            "--no-insightface",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    text = capsys.readouterr().out
    assert "search path p50" in text and "peak RSS" in text
    res = json.loads(out.read_text())
    for backend in ("openvino", "onnxruntime"):
        for stage in ("decode", "detect", "align", "embed", "total"):
            v = res[f"ours/{backend}/stages/{stage}"]
            assert 0 < v["p50"] <= v["p95"]
        assert res[f"ours/{backend}/stages+details/details"]["p50"] > 0
