"""Leave-one-source-out liveness protocol: fitting, thresholds, hold-out, worst source."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.config import Settings
from edge.engine import Models
from edge.evaluation import liveness as ev
from edge.evaluation import liveness_loso as lo
from edge.vision.liveness import LivenessScorer
from edge.vision.pad_cues import CUE_SIGNS, CUES


def _rows(seed: int = 0) -> list[lo.FeatureRow]:
    """Three sources whose score levels differ, as real capture setups do."""
    rng = np.random.default_rng(seed)
    rows = []
    for src, shift, n in (("a", 0.0, 40), ("b", -2.0, 25), ("c", 1.5, 8)):
        for label, mu in (("live", 3.0), ("spoof", -3.0)):
            for i in range(n):
                f = tuple(float(v) for v in rng.normal(mu + shift, 1.5, 2))
                rows.append(lo.FeatureRow(f"{src}{label}{i}", label, src, "k", f, 2.0, True))
    return rows


def test_each_held_out_source_is_scored_by_a_fit_that_never_saw_it() -> None:
    rows = _rows()
    rep = lo.loso(rows, fits={"refit": (lo.fit_operating_point, lambda r: True)})
    assert set(rep["sources"]) == {"a", "b", "c"}
    for src, points in rep["sources"].items():
        expected = lo.fit_operating_point([r for r in rows if r.source != src])
        got = points["refit"]["operatingPoint"]
        assert got["weights"] == pytest.approx(list(expected.weights))
        assert got["bias"] == pytest.approx(expected.bias)
        assert got["threshold"] == pytest.approx(expected.threshold)
        # and its error rates are those of that fit on the held-out rows alone
        held = [r for r in rows if r.source == src]
        s = expected.scores(np.array([r.features for r in held]))
        lab = np.array([r.label for r in held])
        assert points["refit"]["apcer"] == pytest.approx(
            float(np.mean(s[lab == "spoof"] < expected.threshold))
        )
        assert points["refit"]["bpcer"] == pytest.approx(
            float(np.mean(s[lab == "live"] >= expected.threshold))
        )


def test_row_filter_keeps_rows_out_of_the_fit() -> None:
    rows = _rows()
    rep = lo.loso(rows, fits={"not-c": (lo.fit_operating_point, lambda r: r.source != "c")})
    only_a = lo.fit_operating_point([r for r in rows if r.source == "a"])  # b held out
    assert rep["sources"]["b"]["not-c"]["operatingPoint"]["bias"] == pytest.approx(only_a.bias)


def test_worst_source_is_the_highest_acer_not_the_mean() -> None:
    rows = _rows()
    fixed = lo.OperatingPoint((-1.0, -1.0), 0.0, 0.5)
    rep = lo.loso(rows, fixed={"fixed": fixed})
    acers = {s: p["fixed"]["acer"] for s, p in rep["sources"].items()}
    assert rep["worst"]["fixed"]["source"] == max(acers, key=lambda s: acers[s])
    assert rep["worst"]["fixed"]["acer"] == max(acers.values())
    assert rep["worst"]["fixed"]["acer"] > float(np.mean(list(acers.values())))
    # "c" has 8 images per class: too few to rank among the sized sources
    assert set(rep["worstSized"]) == {"fixed"}
    sized = {s: a for s, a in acers.items() if s != "c"}
    assert rep["worstSized"]["fixed"]["acer"] == max(sized.values())


def test_a_source_with_one_class_is_judged_on_that_class() -> None:
    rows = [r for r in _rows() if not (r.source == "b" and r.label == "live")]
    rep = lo.loso(rows, fixed={"x": lo.OperatingPoint((-1.0, -1.0), 0.0, 0.5)})
    b = rep["sources"]["b"]["x"]
    assert b["bpcer"] != b["bpcer"]  # NaN: no live image there
    assert lo._acer_of(b) == b["apcer"]


@settings(max_examples=100, deadline=None)
@given(
    live=st.lists(st.floats(0, 1, allow_nan=False), min_size=1, max_size=60),
    target=st.sampled_from([0.0, 0.05, 0.1, 0.3]),
)
def test_threshold_meets_the_bpcer_target_and_no_lower_one_does(
    live: list[float], target: float
) -> None:
    a = np.array(live)
    t = lo.threshold_at_bpcer(a, target)
    assert np.mean(a >= t) <= target + 1e-12
    for c in np.unique(a):
        if c < t:
            assert np.mean(a >= c) > target


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_fusion_is_monotone_and_separates(seed: int) -> None:
    rows = _rows(seed)
    op = lo.fit_operating_point(rows)
    assert all(w <= 0 for w in op.weights)  # more live belief never raises P(spoof)
    x = np.array([r.features for r in rows])
    s = op.scores(x)
    lab = np.array([r.label for r in rows])
    assert s[lab == "spoof"].mean() > s[lab == "live"].mean()


def test_a_model_that_reads_backwards_is_dropped_not_reversed() -> None:
    rng = np.random.default_rng(1)
    y = np.repeat([0, 1], 50)
    good = np.where(y == 0, 3.0, -3.0) + rng.normal(0, 1, 100)
    backwards = -good + rng.normal(0, 0.5, 100)
    w, _ = lo.fit_monotone(np.stack([good, backwards], axis=1), y)
    assert w[0] < 0 and w[1] == 0.0


def test_sources_weigh_alike_whatever_their_size() -> None:
    rows = _rows()
    w = lo.source_weights(rows)
    for src in ("a", "b", "c"):
        for label in ("live", "spoof"):
            m = np.array([r.source == src and r.label == label for r in rows])
            assert w[m].sum() == pytest.approx(np.sqrt(m.sum()))


def test_recentred_point_makes_the_same_decisions_at_one_half() -> None:
    rows = _rows()
    op = lo.OperatingPoint((-0.4, -0.7), -1.1, 0.83)
    r = op.recentred()
    assert r.threshold == 0.5 and r.weights == op.weights
    x = np.array([row.features for row in rows])
    assert np.array_equal(op.scores(x) >= op.threshold, r.scores(x) >= 0.5)


def test_loso_command_reports_every_source_and_the_worst(
    session_settings: Settings, testdata: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """End to end on the real test data, real models, real synthetic prints."""
    out = tmp_path / "loso.json"
    args = argparse.Namespace(
        data=testdata / "liveness", out=out, threshold=None, loso=True, attacks="print", seed=0
    )
    assert ev.run(session_settings, args) == 0
    printed = capsys.readouterr().out
    assert "WORST source (shipped, all sources)" in printed and "decision:" in printed
    # shipped, re-fit of the models' log-odds and the fusion with cues, side by side
    table = printed[printed.index("comparison (worst held-out source") :]
    for point in ("shipped", "refit-real", "refit-all", "cues-real", "cues-all"):
        assert f"\n{point} " in table
    rep = json.loads(out.read_text())
    rows = [
        lo.FeatureRow(
            **{
                **r,
                "features": tuple(r["features"]),
                "logits": tuple(tuple(v) for v in r["logits"]),
                "cues": tuple(r["cues"]),
            }
        )
        for r in rep["rows"]
    ]
    assert all(len(r.cues) == len(CUES) for r in rows)  # every face carries its cues
    for name in ("shipped", "cues-all"):  # bona fide BPCER of each point is reported
        assert 0.0 <= rep["bonaFide"][name]["heldOut"] <= 1.0
    sources = {r.source for r in rows}
    assert "Apfol/liveness-detection-opencv" in sources
    assert any(s.startswith("DoubangoTelecom/") for s in sources)
    assert sum(s.startswith("photos ") for s in sources) >= 3  # the bona fide control
    assert set(rep["all"]["sources"]) == sources
    kinds = {r.kind for r in rows}
    assert {"synthetic print (scene)", "synthetic print (matched)", "bona fide photo"} <= kinds
    assert not any("screen" in k for k in kinds)  # only the attacks asked for
    # The shipped point and every candidate side by side, per source; the worst is their max.
    apfol = rep["all"]["sources"]["Apfol/liveness-detection-opencv"]
    assert {"shipped", "threshold", "refit-real", "refit-all", "cues-all"} <= set(apfol)
    assert apfol["shipped"]["samples"] == {"live": 60, "spoof": 60}
    acers = {s: lo._acer_of(v["shipped"]) for s, v in rep["all"]["sources"].items()}
    assert rep["all"]["worst"]["shipped"]["acer"] == max(acers.values())
    # The real view never judges a synthetic image.
    for src, points in rep["real"]["sources"].items():
        n_real = sum(1 for r in rows if r.source == src and lo.is_real(r))
        assert sum(points["shipped"]["samples"].values()) == n_real
    # Bona fide photos are never attacks, and every photo source has its attacks with it.
    for r in rows:
        if r.kind == "bona fide photo":
            assert r.label == "live" and r.source.startswith("photos ")
        if r.kind.startswith("synthetic"):
            assert r.label == "spoof" and r.source.startswith("photos ")
    # The decision printed follows the rule: better on real images, no worse with attacks.
    d = rep["decision"]
    best = d["candidate"]
    real_ws, all_ws = rep["real"]["worstSized"], rep["all"]["worstSized"]
    assert d["ship"] == (
        real_ws[best]["acer"] < real_ws["shipped"]["acer"]
        and all_ws[best]["acer"] <= all_ws["shipped"]["acer"]
    )


def _scorer(settings: Settings) -> LivenessScorer:
    scorer = Models.load(settings).liveness
    assert scorer is not None  # the default pack has the liveness roles
    return scorer


def test_shipped_points_read_the_calibration_file(session_settings: Settings) -> None:
    """The scorer's own point, plus the one it replaced when the file keeps it, so old and
    new can be compared in one run (`eval liveness --loso`)."""
    scorer = _scorer(session_settings)
    points = lo.shipped_points(scorer)
    assert points["shipped"].threshold == scorer.params.threshold == 0.5
    assert points["shipped"].bias == scorer.params.bias
    assert ("previous" in points) == bool(scorer.params.raw.get("previousOperatingPoint"))
    n = len(scorer.params.models)
    assert all(w <= 0 for p in points.values() for w in p.weights[:n])  # monotone in the models
    shipped = points["shipped"]
    assert len(shipped.weights) == n + (len(CUES) if scorer.params.cues else 0)
    cue_w = dict(zip(CUES, shipped.weights[n:], strict=False))
    assert {c.name: c.weight for c in scorer.params.cues} == {
        k: v for k, v in cue_w.items() if k in {c.name for c in scorer.params.cues}
    }
    assert all(w * CUE_SIGNS[k] >= 0 for k, w in cue_w.items())  # each cue read as physics says


def test_decision_ships_only_a_better_worst_source() -> None:
    rows = _rows()
    good = lo.OperatingPoint((-1.0, -1.0), 0.0, 0.5)
    bad = lo.OperatingPoint((-1.0, -1.0), 8.0, 0.5)  # calls nearly everything spoof
    for shipped, ships in ((bad, True), (good, False)):
        fits = lo.candidates(shipped)
        real = lo.loso(rows, fixed={"shipped": shipped}, fits=fits, judge=lo.is_real)
        every = lo.loso(rows, fixed={"shipped": shipped}, fits=fits)
        d = lo.decide(real, every, rows, fits)
        best = min(fits, key=lambda n: real["worstSized"][n]["acer"])
        assert d["candidate"] == best
        assert d["ship"] is ships
        assert d["ship"] == (
            real["worstSized"][best]["acer"] < real["worstSized"]["shipped"]["acer"]
            and every["worstSized"][best]["acer"] <= every["worstSized"]["shipped"]["acer"]
        )


def test_decision_refuses_a_point_that_only_moves_errors_onto_attacks() -> None:
    """Better on real images but worse once synthetic attacks are judged: not shipped."""
    real = {"worstSized": {"shipped": {"acer": 0.20}, "refit": {"acer": 0.10}}}
    every = {"worstSized": {"shipped": {"acer": 0.18}, "refit": {"acer": 0.28}}}
    fits = {"refit": (lo.fit_operating_point, lo.is_real)}
    d = lo.decide(real, every, _rows(), fits)
    assert d["candidate"] == "refit" and d["ship"] is False
    assert "synthetic" in d["why"]


def test_threshold_only_keeps_the_fusion() -> None:
    rows = _rows()
    base = lo.OperatingPoint((-0.3, -0.6), -1.0, 0.5)
    op = lo.threshold_only(base)(rows)
    assert op.weights == base.weights and op.bias == base.bias
    live = base.scores(np.array([r.features for r in rows if r.label == "live"]))
    assert op.threshold == lo.threshold_at_bpcer(live)


def test_out_of_source_pooling_matches_the_per_source_decisions() -> None:
    rows = _rows()
    rep = lo.loso(rows, fits={"refit": (lo.fit_operating_point, lambda r: True)})
    pooled = rep["outOfSource"]["refit"]
    errors = sum(
        p["refit"]["apcer"] * p["refit"]["samples"]["spoof"] for p in rep["sources"].values()
    )
    assert pooled["apcer"] == pytest.approx(errors / pooled["samples"]["spoof"])
    assert pooled["samples"] == {"live": 73, "spoof": 73}


def test_unknown_attack_is_refused(
    session_settings: Settings, testdata: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = argparse.Namespace(
        data=testdata / "liveness", out=None, threshold=None, loso=True, attacks="mask", seed=0
    )
    assert ev.run(session_settings, args) == 2
    assert "unknown attack" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------
# Fusion with the model-free cues
# ------------------------------------------------------------------------------------------
def _cue_rows(seed: int = 0) -> list[lo.FeatureRow]:
    """`_rows` plus cues: `blackLevel` separates in its physical direction (attacks
    higher), `saturation` reads backwards (attacks more saturated), the rest are noise."""
    rng = np.random.default_rng(seed)
    out = []
    for r in _rows(seed):
        spoof = r.label == "spoof"
        cues = {n: float(rng.normal(5.0, 1.0)) for n in CUES}
        cues["blackLevel"] = float(rng.normal(0.3 if spoof else 0.1, 0.05))
        cues["saturation"] = float(rng.normal(0.6 if spoof else 0.4, 0.05))
        # the models alone are made weak, so the cues matter
        weak = tuple(float(v) for v in rng.normal(0.0, 1.0, 2))
        out.append(
            lo.FeatureRow(
                r.name, r.label, r.source, r.kind, weak, 2.0, True, (), tuple(cues.values())
            )
        )
    return out


def test_cue_fit_reads_each_cue_only_in_its_physical_direction() -> None:
    rows = _cue_rows()
    op = lo.fit_with_cues(rows)
    w = dict(zip(CUES, op.weights[2:], strict=True))
    assert w["blackLevel"] * CUE_SIGNS["blackLevel"] > 0.5  # learnt, attacks read higher
    assert w["saturation"] == 0.0  # backwards in this data: dropped, never reversed
    assert all(v <= 0 for v in op.weights[:2])
    x = op.design(rows)
    s = op.scores(x)
    lab = np.array([r.label for r in rows])
    assert np.mean(s[lab == "live"] >= op.threshold) <= lo.TARGET_BPCER
    assert np.mean(s[lab == "spoof"] >= op.threshold) > 0.9


def test_cue_scales_come_from_the_bona_fide_training_rows_only() -> None:
    rows = _cue_rows()
    op = lo.fit_with_cues(rows)
    live = np.array([r.cues for r in rows if r.label == "live"])
    assert op.cue_mean == pytest.approx(tuple(live.mean(axis=0)))
    assert op.cue_scale == pytest.approx(tuple(live.std(axis=0)))
    # a held-out source never sets the scale: LOSO fits equal fits without it
    rep = lo.loso(rows, fits={"cues": (lo.fit_with_cues, lambda r: True)})
    alone = lo.fit_with_cues([r for r in rows if r.source != "a"])
    assert rep["sources"]["a"]["cues"]["operatingPoint"]["cueMean"] == pytest.approx(
        list(alone.cue_mean)
    )


def test_cue_point_recentres_and_round_trips() -> None:
    rows = _cue_rows()
    op = lo.fit_with_cues(rows)
    r = op.recentred()
    assert r.cue_mean == op.cue_mean and r.cue_scale == op.cue_scale
    assert np.array_equal(
        op.scores(op.design(rows)) >= op.threshold, r.scores(r.design(rows)) >= 0.5
    )
    assert lo.op_of(lo._op_dict(op)) == op


def test_rows_without_cues_get_no_cue_candidates_and_a_cue_fit_refuses_them() -> None:
    rows = _rows()
    rep = lo.report_for(rows, {"shipped": lo.OperatingPoint((-1.0, -1.0), 0.0, 0.5)})
    assert "cues-all" not in rep["real"]["worst"]
    with pytest.raises(ValueError, match="cues"):
        lo.fit_with_cues(rows)
    rep = lo.report_for(_cue_rows(), {"shipped": lo.OperatingPoint((-1.0, -1.0), 0.0, 0.5)})
    assert {"cues-real", "cues-all"} <= set(rep["real"]["worst"])
    assert "cues-all" in lo.format_comparison(rep)


def test_decision_needs_bona_fide_photos_kept() -> None:
    """Better everywhere but rejecting more than 5 % of the bona fide photos: not shipped."""
    real = {"worstSized": {"shipped": {"acer": 0.20}, "refit": {"acer": 0.10}}}
    every = {"worstSized": {"shipped": {"acer": 0.18}, "refit": {"acer": 0.12}}}
    fits = {"refit": (lo.fit_operating_point, lo.is_real)}
    bad = {"shipped": {"heldOut": 0.10, "fitted": 0.10}, "refit": {"heldOut": 0.08, "fitted": 0.07}}
    d = lo.decide(real, every, _rows(), fits, bad)
    assert d["ship"] is False and "bona fide" in d["why"]
    good = {**bad, "refit": {"heldOut": 0.08, "fitted": 0.04}}
    assert lo.decide(real, every, _rows(), fits, good)["ship"] is True


def test_decision_takes_the_best_candidate_that_passes_every_gate() -> None:
    real = {"worstSized": {"shipped": {"acer": 0.2}, "a": {"acer": 0.1}, "b": {"acer": 0.15}}}
    every = {"worstSized": {"shipped": {"acer": 0.2}, "a": {"acer": 0.3}, "b": {"acer": 0.12}}}
    fits = {n: (lo.fit_operating_point, lo.is_real) for n in ("a", "b")}
    d = lo.decide(real, every, _rows(), fits)
    assert d["candidate"] == "b" and d["ship"] is True


def test_a_report_only_candidate_is_never_shipped() -> None:
    """`cues+lines` is shown next to the others but cannot be chosen, even when best."""
    real = {"worstSized": {"shipped": {"acer": 0.2}, "cues+lines": {"acer": 0.05}}}
    every = {"worstSized": {"shipped": {"acer": 0.2}, "cues+lines": {"acer": 0.05}}}
    real["worstSized"]["b"] = {"acer": 0.3}
    every["worstSized"]["b"] = {"acer": 0.3}
    fits = {n: (lo.fit_operating_point, lo.is_real) for n in ("cues+lines", "b")}
    d = lo.decide(real, every, _rows(), fits)
    assert "cues+lines" in lo.REPORT_ONLY
    assert d["candidate"] == "b" and d["ship"] is False
    assert d["gates"]["cues+lines"] == {
        "betterReal": True,
        "noWorseWithAttacks": True,
        "bonaFidePhotos": True,
    }


def test_the_shippable_cue_fit_leaves_frame_lines_at_zero() -> None:
    rows = _cue_rows()
    op = lo.fit_with_cues(rows)
    w = dict(zip(CUES, op.weights[2:], strict=True))
    assert set(lo.FIT_CUES) < set(CUES) and w["frameLines"] == 0.0
