"""Rigid-motion evidence on camera tracks assembled from the test data (real models)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from edge.camera.decision import LivenessScore
from edge.camera.rigid import PairMotion, RigidEvidence
from edge.config import Settings
from edge.evaluation import liveness as ev
from edge.evaluation import rigid as er


def test_tracks_are_assembled_the_same_from_the_same_seed(testdata: Path) -> None:
    a, b = er.assemble(testdata, 1, per_kind=2), er.assemble(testdata, 1, per_kind=2)
    assert [v.name for v in a] == [v.name for v in b]
    assert all(
        np.array_equal(x, y)
        for va, vb in zip(a, b, strict=True)
        for x, y in zip(va.frames, vb.frames, strict=True)
    )
    kinds = {v.kind: v.label for v in a}
    assert kinds == {
        "live, video": "live",
        "live, poses": "live",
        "live, still": "live",
        "print, turned": "spoof",
        "print, steady light": "spoof",
        "screen, turned": "spoof",
        "screen, steady light": "spoof",
        "replay video": "spoof",
    }
    turned = next(v for v in a if v.kind == "print, turned")
    assert len(turned.frames) == er.TURN_FRAMES
    assert not np.array_equal(turned.frames[0], turned.frames[2])  # the sheet moves


def test_summary_counts_the_cue_and_the_fused_verdicts_by_hand() -> None:
    live = er.Video("s video", "live", "live, video", [])
    sheet = er.Video("s print", "spoof", "print, turned", [])
    other = er.Video("t print", "spoof", "print, turned", [])
    passed = [LivenessScore(0.1, True) for _ in range(3)]  # the passive score says live
    m = [PairMotion(0.04, 0.02)]
    tracks = [
        er.RigidTrack(live, passed, m, RigidEvidence("depth", 0.5, 3)),
        er.RigidTrack(sheet, passed, m, RigidEvidence("flat", 0.1, 2)),
        er.RigidTrack(other, passed, m, RigidEvidence("undecided", None, 1)),
    ]
    k = er.summarize(tracks, 0.5)
    assert k["live, video"]["error"] == {"passive": 0.0, "withRigid": 0.0, "rigidOnly": 0.0}
    p = k["print, turned"]
    assert (p["tracks"], p["decided"], p["flat"], p["decidedRate"]) == (2, 1, 1, 0.5)
    # both prints pass the passive score; the rule catches the flat one, not the undecided
    assert p["error"] == {"passive": 1.0, "withRigid": 0.5, "rigidOnly": 0.0}
    assert "print, turned" in er.format_rigid(k)


def test_eval_liveness_rigid_prints_the_table(
    session_settings: Settings, testdata: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "rigid.json"
    args = argparse.Namespace(
        data=testdata / "liveness", out=out, threshold=None, loso=False, blinks=False,
        rigid=True, seed=0,
    )  # fmt: skip
    assert ev.run(session_settings, args) == 0
    printed = capsys.readouterr().out
    assert "rigid-motion evidence" in printed and "passive+rigid" in printed
    kinds = json.loads(out.read_text())["kinds"]
    assert all(v["tracks"] > 0 for v in kinds.values()) and len(kinds) == 8
    for kind in ("live, video", "live, poses", "live, still"):
        k = kinds[kind]
        assert k["decidedRate"] >= 0.8 and k["flat"] == 0, (kind, k)
        # the rule never costs a live track more than the passive score did
        assert k["error"]["withRigid"] == k["error"]["passive"]
    sheets = [k for name, k in kinds.items() if "turned" in name or "steady" in name]
    for k in sheets:
        assert k["error"]["withRigid"] <= k["error"]["passive"], k
        assert k["flat"] >= 0.1 * k["tracks"], k  # the cue catches a share of turned sheets
    prints = [kinds["print, turned"], kinds["print, steady light"]]
    assert sum(k["flat"] for k in prints) >= 5 * sum(k["depth"] for k in prints)
    # the limit: a replayed video of a moving head is not flat in its content
    assert kinds["replay video"]["flat"] == 0
