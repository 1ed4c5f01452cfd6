"""Blink evidence on camera tracks assembled from the Yale test photos (real models)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from edge.camera.decision import LivenessScore
from edge.config import Settings
from edge.evaluation import blinks as bl
from edge.evaluation import liveness as ev


def test_tracks_are_assembled_the_same_from_the_same_seed(testdata: Path) -> None:
    a, b = bl.assemble(testdata, 3), bl.assemble(testdata, 3)
    assert [v.name for v in a] == [v.name for v in b]
    assert all(
        np.array_equal(x, y)
        for va, vb in zip(a, b, strict=True)
        for x, y in zip(va.frames, vb.frames, strict=True)
    )
    kinds = {v.kind for v in a}
    assert kinds == {"live, blink", "live, no blink", "print"}
    assert len(a) == 3 * len({v.name.split()[0] for v in a}) >= 3 * 8  # every Yale subject
    for v in a:
        assert len(v.frames) == (
            bl.FRAMES_OPEN if v.kind == "live, no blink" else bl.FRAMES_OPEN + 1
        )
        assert (v.label == "spoof") == (v.kind == "print")
    other = bl.assemble(testdata, 4)
    assert not np.array_equal(a[0].frames[0], other[0].frames[0])  # the jitter is drawn


def test_summary_counts_blinks_and_verdicts_by_hand() -> None:
    live = bl.Video("s blink", "live", "live, blink", [])
    attack = bl.Video("s print", "spoof", "print", [])
    blink = [LivenessScore(0.2, True, e) for e in (0.9, 0.1, 0.9)]
    still = [LivenessScore(0.2, True, 0.9) for _ in range(3)]
    k = bl.summarize([(live, blink), (attack, still)], 0.5)
    assert k["live, blink"]["blinkRate"] == 1.0
    assert k["live, blink"]["error"] == {"passive": 0.0, "withBlink": 0.0, "blinkOnly": 0.0}
    # the print is passed by the passive score, held back by the blink rule
    assert k["print"]["blinkRate"] == 0.0
    assert k["print"]["error"] == {"passive": 1.0, "withBlink": 0.0, "blinkOnly": 0.0}


def test_blinks_are_seen_on_live_tracks_and_not_on_prints(
    session_settings: Settings, testdata: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "blinks.json"
    args = argparse.Namespace(
        data=testdata / "liveness", out=out, threshold=None, loso=False, blinks=True, seed=0
    )
    assert ev.run(session_settings, args) == 0
    assert "blink evidence" in capsys.readouterr().out
    kinds = json.loads(out.read_text())["kinds"]
    assert kinds["live, blink"]["blinkRate"] >= 0.5
    assert kinds["print"]["blinkRate"] <= 0.2
    assert kinds["live, no blink"]["blinkRate"] <= 0.3
    # the rule never lets more prints through than the passive score alone
    assert kinds["print"]["error"]["withBlink"] <= kinds["print"]["error"]["passive"]
