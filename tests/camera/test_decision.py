"""The per-track decision rules, driven with hand-built observations and exact numbers.

No models, video or threads: the state machine takes numbers in, recognition is a scripted
answer, and every expectation below is computed by hand from README "How a decision is made".
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from edge.camera.decision import (
    BETTER_FRAME,
    Decision,
    LivenessScore,
    Observation,
    Rules,
    TrackDecision,
    liveness_verdict,
)
from edge.camera.events import LivenessVerdict, Match, Verdict
from edge.vision.geometry import PixelBox

SIZE = (1280, 720)
ALICE = Match(uuid="u-alice", key="alice", collection="staff", score=0.95)
BOB = Match(uuid="u-bob", key="bob", collection="staff", score=0.93)
CAROL = Match(uuid="u-carol", key="carol", collection="", score=0.91)
LIVE3 = Rules(liveness=True, votes=3, spoof_threshold=0.5)
NO_LIVENESS = Rules(liveness=False)


def box(n: int) -> PixelBox:
    """A distinct face box per frame, so a test can tell which frame a decision used."""
    return PixelBox(left=100 + n, top=50, width=200, height=240)


def seen(n: int, quality: float, spoof: float | None = None, reliable: bool = True) -> Observation:
    live = LivenessScore(spoof, reliable) if spoof is not None else None
    return Observation(quality=quality, position=box(n), frame_size=SIZE, liveness=live)


@dataclass
class Search:
    """Scripted recognition: answers `answer`, records which crops were searched."""

    answer: Match | None = ALICE
    crops: list[int] = field(default_factory=list)

    def __call__(self, crop: int) -> Match | None:
        self.crops.append(crop)
        return self.answer


class TrackFeed:
    """A TrackDecision whose crops are frame numbers; counts the crops built."""

    def __init__(self, rules: Rules) -> None:
        self.d: TrackDecision[int] = TrackDecision(rules)
        self.n = 0
        self.built: list[int] = []

    def frame(
        self,
        search: Search,
        quality: float,
        spoof: float | None = None,
        *,
        reliable: bool = True,
        ts: float | None = None,
    ) -> Decision | None:
        self.n += 1
        n = self.n

        def crop() -> int:
            self.built.append(n)
            return n

        self.d.observe(seen(n, quality, spoof, reliable), crop)
        return self.d.update(search, ts=n / 10 if ts is None else ts)


# Liveness verdict --------------------------------------------------------------------------


def test_the_verdict_is_the_majority_of_the_reliable_votes() -> None:
    assert liveness_verdict([0.6, 0.7, 0.2], 5, LIVE3) == LivenessVerdict(
        spoof_score=0.5, verdict="spoof", votes=3, spoof_votes=2, frames=5
    )
    assert liveness_verdict([0.1, 0.2, 0.9], 3, LIVE3) == LivenessVerdict(
        spoof_score=0.4, verdict="live", votes=3, spoof_votes=1, frames=3
    )
    # A score at the threshold is a spoof vote; the majority wins over the mean (0.2333).
    assert liveness_verdict([0.5, 0.1, 0.1], 3, LIVE3) == LivenessVerdict(
        spoof_score=0.2333, verdict="live", votes=3, spoof_votes=1, frames=3
    )
    assert liveness_verdict([0.5, 0.5, 0.1], 3, LIVE3).verdict == "spoof"  # mean 0.3667


def test_a_tie_goes_by_the_mean() -> None:
    assert liveness_verdict([0.9, 0.2], 2, LIVE3) == LivenessVerdict(
        spoof_score=0.55, verdict="spoof", votes=2, spoof_votes=1, frames=2
    )
    assert liveness_verdict([0.6, 0.1], 2, LIVE3) == LivenessVerdict(
        spoof_score=0.35, verdict="live", votes=2, spoof_votes=1, frames=2
    )
    # Mean exactly at the threshold is spoof (spoofScore >= spoof_threshold).
    assert liveness_verdict([0.7, 0.3], 2, LIVE3).verdict == "spoof"
    strict = Rules(liveness=True, votes=3, spoof_threshold=0.56)
    assert liveness_verdict([0.9, 0.2], 2, strict).verdict == "live"  # 1-1, mean 0.55 < 0.56


def test_no_reliable_vote_is_uncertain_and_no_liveness_model_is_unchecked() -> None:
    assert liveness_verdict([], 6, LIVE3) == LivenessVerdict(
        spoof_score=None, verdict="uncertain", votes=0, spoof_votes=0, frames=6
    )
    assert liveness_verdict([0.9], 4, NO_LIVENESS) == LivenessVerdict(
        spoof_score=None, verdict="unchecked", votes=0, spoof_votes=0, frames=0
    )


# When a decision is due --------------------------------------------------------------------


def test_the_decision_waits_for_the_reliable_votes() -> None:
    t, search = TrackFeed(LIVE3), Search()
    assert t.frame(search, 0.30, 0.1) is None
    assert t.frame(search, 0.40, 0.9, reliable=False) is None  # scored, does not vote
    assert t.frame(search, 0.35, 0.2) is None
    assert search.crops == []  # nothing searched before the decision is due
    d = t.frame(search, 0.20, 0.3, ts=7.25)
    assert d == Decision(
        revision=1,
        match=ALICE,
        liveness=LivenessVerdict(spoof_score=0.2, verdict="live", votes=3, spoof_votes=0, frames=4),
        quality=0.40,  # the best frame (2), not the deciding one
        position=box(2),
        frame_size=SIZE,
        decided_s=7.25,
    )
    assert d.known and search.crops == [2]
    assert t.d.decided and t.d.revision == 1 and (t.d.votes, t.d.frames) == (3, 4)


def test_twice_the_votes_in_frames_without_enough_votes_decides_uncertain() -> None:
    t, search = TrackFeed(LIVE3), Search(answer=None)
    for _ in range(5):
        assert t.frame(search, 0.5, 0.9, reliable=False) is None
    d = t.frame(search, 0.5, 0.9, reliable=False)
    assert d is not None and not d.known and d.match is None
    assert d.liveness == LivenessVerdict(
        spoof_score=None, verdict="uncertain", votes=0, spoof_votes=0, frames=6
    )
    assert d.position == box(1)  # equal quality never replaces the first best frame


def test_twice_the_votes_in_frames_decides_with_the_votes_there_are() -> None:
    t, search = TrackFeed(LIVE3), Search()
    for spoof, reliable in [(0.8, True), (0.1, False), (0.1, False), (0.1, False), (0.6, True)]:
        assert t.frame(search, 0.5, spoof, reliable=reliable) is None
    d = t.frame(search, 0.5, 0.1, reliable=False)
    assert d is not None
    assert d.liveness == LivenessVerdict(
        spoof_score=0.7, verdict="spoof", votes=2, spoof_votes=2, frames=6
    )


def test_without_a_liveness_model_the_first_frame_decides() -> None:
    t, search = TrackFeed(NO_LIVENESS), Search(answer=BOB)
    d = t.frame(search, 0.05)
    assert d is not None and d.revision == 1 and d.match == BOB
    assert d.liveness.verdict == "unchecked" and d.liveness.frames == 0


# Best frame --------------------------------------------------------------------------------


def test_the_best_frame_is_the_first_of_the_highest_quality_and_only_it_is_cropped() -> None:
    d: TrackDecision[int] = TrackDecision(LIVE3)
    built: list[int] = []

    def crop(n: int) -> int:
        built.append(n)
        return n

    became = [
        d.observe(seen(n, q, 0.1), lambda n=n: crop(n))  # type: ignore[misc]
        for n, q in enumerate([0.3, 0.5, 0.5, 0.4, 0.6, 0.2], start=1)
    ]
    assert became == [True, True, False, False, True, False]
    assert built == [1, 2, 5]
    assert d.best is not None and (d.best.crop, d.best.quality, d.best.position) == (5, 0.6, box(5))


def test_identity_is_searched_on_the_best_frame_so_far() -> None:
    t, search = TrackFeed(LIVE3), Search()
    t.frame(search, 0.2, 0.1)
    t.frame(search, 0.7, 0.1)
    d = t.frame(search, 0.6, 0.1)
    assert d is not None and search.crops == [2] and d.quality == 0.7


# Re-checks ---------------------------------------------------------------------------------


def test_identity_is_rechecked_only_on_a_clearly_better_frame() -> None:
    t, search = TrackFeed(NO_LIVENESS), Search()
    assert t.frame(search, 0.4) is not None
    limit = 0.4 * BETTER_FRAME
    assert t.frame(search, 0.45) is None  # a better best frame, but not clearly better
    assert t.frame(search, limit) is None  # exactly 1.15x is not more than 1.15x
    assert search.crops == [1] and t.d.best is not None and t.d.best.crop == 3
    assert t.frame(search, math.nextafter(limit, 1.0)) is None  # searched, same decision
    assert search.crops == [1, 4]
    # The margin now counts from the frame searched last (4), not the first decision.
    assert t.frame(search, limit * 1.1) is None
    assert search.crops == [1, 4]


def test_identity_is_rechecked_on_more_votes() -> None:
    t, search = TrackFeed(LIVE3), Search()
    for _ in range(3):
        t.frame(search, 0.5, 0.1)
    assert search.crops == [1]
    assert t.frame(search, 0.5, 0.1, reliable=False) is None  # no new vote: no search
    assert search.crops == [1]
    assert t.frame(search, 0.4, 0.2) is None  # a fourth vote: searched again
    assert search.crops == [1, 1]


def test_an_enrolment_recheck_searches_once_more_and_the_change_still_needs_two() -> None:
    t, search = TrackFeed(LIVE3), Search(answer=None)
    for _ in range(3):
        t.frame(search, 0.5, 0.1)
    assert t.d.update(search, ts=1.0) is None and search.crops == [1]
    t.d.recheck()
    search.answer = ALICE
    assert t.d.update(search, ts=1.1) is None  # first sighting of ALICE
    assert search.crops == [1, 1]
    assert t.d.update(search, ts=1.2) is None  # nothing new: not searched again
    assert search.crops == [1, 1]
    d = t.frame(search, 0.5, 0.1, ts=1.3)  # a new vote: second sighting in a row
    assert d is not None and (d.revision, d.match, d.decided_s) == (2, ALICE, 1.3)


# Debounce and revisions --------------------------------------------------------------------


def rising(t: TrackFeed, search: Search, answers: list[Match | None]) -> list[int | None]:
    """One clearly better frame per answer (each is searched); the revisions published."""
    out: list[int | None] = []
    q = 0.1
    for a in answers:
        search.answer = a
        d = t.frame(search, q)
        out.append(None if d is None else d.revision)
        q *= 1.2
    return out


def test_a_changed_decision_is_published_only_when_seen_twice_in_a_row() -> None:
    t, search = TrackFeed(NO_LIVENESS), Search()
    revisions = rising(t, search, [ALICE, BOB, ALICE, BOB, BOB, BOB, None, None, ALICE])
    assert revisions == [1, None, None, None, 2, None, None, 3, None]
    assert len(search.crops) == 9 and t.d.revision == 3


def test_a_newer_change_replaces_the_pending_one() -> None:
    t, search = TrackFeed(NO_LIVENESS), Search()
    assert rising(t, search, [ALICE, BOB, CAROL, CAROL]) == [1, None, None, 2]


def test_a_changed_liveness_verdict_is_a_changed_decision() -> None:
    t, search = TrackFeed(Rules(liveness=True, votes=1)), Search()
    d1 = t.frame(search, 0.5, 0.1)
    assert d1 is not None and d1.liveness.verdict == "live"
    assert t.frame(search, 0.5, 0.9) is None  # 1-1, mean 0.5: spoof, seen once
    d2 = t.frame(search, 0.5, 0.9)
    assert d2 is not None and d2.revision == 2 and d2.match == ALICE
    assert d2.liveness == LivenessVerdict(
        spoof_score=0.6333, verdict="spoof", votes=3, spoof_votes=2, frames=3
    )


# Track end ---------------------------------------------------------------------------------


def test_an_undecided_track_decides_at_its_end_if_seen_twice() -> None:
    t, search = TrackFeed(LIVE3), Search(answer=None)
    t.frame(search, 0.3, 0.9)
    assert t.d.finish(search, ts=2.0, seen=1) is None  # a one-round blip
    assert search.crops == []
    d = t.d.finish(search, ts=2.5, seen=2)
    assert d == Decision(
        revision=1,
        match=None,
        liveness=LivenessVerdict(
            spoof_score=0.9, verdict="spoof", votes=1, spoof_votes=1, frames=1
        ),
        quality=0.3,
        position=box(1),
        frame_size=SIZE,
        decided_s=2.5,
    )
    empty: TrackDecision[int] = TrackDecision(LIVE3)
    assert empty.finish(search, ts=3.0, seen=5) is None  # never observed


def test_a_decided_track_ends_without_another_decision() -> None:
    t, search = TrackFeed(NO_LIVENESS), Search()
    t.frame(search, 0.3)
    t.frame(search, 0.9)  # clearly better: searched, same answer
    search.answer = BOB
    assert t.d.finish(search, ts=1.0, seen=2) is None
    assert search.crops == [1, 2]


# Properties --------------------------------------------------------------------------------

ANSWERS = [None, ALICE, BOB]
qualities = st.one_of(st.sampled_from([0.0, 0.2, 0.3, 0.5, 0.6]), st.floats(0.0, 1.0))
spoofs = st.one_of(st.none(), st.tuples(st.sampled_from([0.1, 0.5, 0.9]), st.booleans()))
steps = st.lists(st.tuples(qualities, spoofs, st.sampled_from(ANSWERS)), max_size=40)

Key = tuple[str | None, Verdict]


def key_of(match: Match | None, verdict: Verdict) -> Key:
    return (match.uuid if match else None, verdict)


@settings(max_examples=300, deadline=None)
@given(liveness=st.booleans(), votes=st.integers(1, 4), seq=steps, seen_more=st.booleans())
def test_decisions_follow_the_debounce_and_count_revisions_by_one(
    liveness: bool,
    votes: int,
    seq: list[tuple[float, tuple[float, bool] | None, Match | None]],
    seen_more: bool,
) -> None:
    rules = Rules(liveness=liveness, votes=votes)
    d: TrackDecision[int] = TrackDecision(rules)
    evaluated: list[Key] = []  # the key of every search, in order
    published: list[tuple[int, Decision]] = []  # (index in `evaluated`, decision)
    qualities_seen: list[float] = []
    for n, (q, sp, answer) in enumerate(seq):
        live = LivenessScore(*sp) if liveness and sp is not None else None
        d.observe(Observation(q, box(n), SIZE, live), lambda n=n: n)  # type: ignore[misc]
        qualities_seen.append(q)
        search = Search(answer=answer)
        out = d.update(search, ts=float(n))
        if search.crops:
            evaluated.append(key_of(answer, d.verdict().verdict))
        if out is not None:
            published.append((len(evaluated) - 1, out))
            # The decision names the first frame of the best quality so far.
            best = max(qualities_seen)
            assert out.quality == best and out.position == box(qualities_seen.index(best))
            assert search.crops == [qualities_seen.index(best)]
            if len(published) == 1 and liveness:  # not before its votes (or 2x frames)
                assert out.liveness.votes >= votes or out.liveness.frames >= 2 * votes
    search = Search(answer=ALICE)
    end = d.finish(search, ts=99.0, seen=len(seq) + (1 if seen_more else 0))
    if end is not None:
        assert not published and len(seq) + seen_more >= 2
        published.append((len(evaluated), end))

    assert [p.revision for _, p in published] == list(range(1, len(published) + 1))
    assert d.revision == len(published) and d.decided == bool(published)
    keys = [key_of(p.match, p.liveness.verdict) for _, p in published]
    assert all(a != b for a, b in itertools.pairwise(keys))  # every later revision is a change
    for i, p in published[1:]:  # ... seen on the search before it too
        assert i >= 1 and evaluated[i] == evaluated[i - 1] == key_of(p.match, p.liveness.verdict)


@settings(max_examples=200, deadline=None)
@given(seq=steps)
def test_the_same_answer_every_time_gives_one_decision(
    seq: list[tuple[float, tuple[float, bool] | None, Match | None]],
) -> None:
    """With one identity and no liveness model nothing can change: one event per track."""
    d: TrackDecision[int] = TrackDecision(NO_LIVENESS)
    decisions = []
    for n, (q, _sp, _answer) in enumerate(seq):
        d.observe(Observation(q, box(n), SIZE), lambda n=n: n)  # type: ignore[misc]
        out = d.update(Search(answer=BOB), ts=float(n))
        if out is not None:
            decisions.append(out)
    d.finish(Search(answer=BOB), ts=99.0, seen=len(seq))
    assert len(decisions) == (1 if seq else 0)
    assert not seq or (decisions[0].revision, decisions[0].match) == (1, BOB)


# Blinks ------------------------------------------------------------------------------------
BLINK3 = Rules(liveness=True, votes=3, spoof_threshold=0.5, blink=True)


def test_a_blink_is_open_then_closed_then_open() -> None:
    from edge.camera.decision import blink_seen

    assert blink_seen([0.9, 0.8, 0.1, 0.9])
    assert blink_seen([0.5, 0.95, 0.5, 0.2, 0.4, 0.75])  # undecided readings in between
    assert not blink_seen([0.9, 0.9, 0.9])  # a photo with open eyes
    assert not blink_seen([0.1, 0.1, 0.1])  # a photo with closed eyes
    assert not blink_seen([0.9, 0.1])  # closed, never reopened
    assert not blink_seen([0.1, 0.9])  # opening alone is no blink
    assert not blink_seen([0.9, 0.35, 0.9])  # 0.35 is not a closed reading
    assert not blink_seen([])


def test_without_a_blink_a_live_majority_is_only_uncertain() -> None:
    v = liveness_verdict([0.1, 0.2, 0.1], 3, BLINK3)
    assert v == LivenessVerdict(
        spoof_score=0.1333, verdict="uncertain", votes=3, spoof_votes=0, frames=3
    )
    assert liveness_verdict([0.1, 0.2, 0.1], 3, BLINK3, blinked=True).verdict == "live"
    # The rule is off by default: the passive verdict alone.
    assert liveness_verdict([0.1, 0.2, 0.1], 3, LIVE3).verdict == "live"


def test_a_blink_never_clears_a_spoof_verdict() -> None:
    """A replayed video blinks: the passive evidence of a screen stands."""
    assert liveness_verdict([0.9, 0.8, 0.1], 3, BLINK3, blinked=True).verdict == "spoof"
    assert liveness_verdict([0.9, 0.8, 0.1], 3, LIVE3, blinked=True).verdict == "spoof"


def test_a_track_turns_live_once_it_blinks() -> None:
    d: TrackDecision[int] = TrackDecision(BLINK3)
    search = Search()
    out = []
    eyes = [0.9, 0.85, 0.9, 0.1, 0.9, 0.9]  # a blink on the 4th-5th frame
    for i, e in enumerate(eyes):
        obs = Observation(0.5 + 0.01 * i, box(i), SIZE, LivenessScore(0.1, True, e))
        d.observe(obs, lambda i=i: i)  # type: ignore[misc]
        out.append(d.update(search, ts=float(i)))
    verdicts = [x.liveness.verdict if x is not None else None for x in out]
    # 3 votes: decided uncertain; the blink completes on frame 5; debounced: published on 6.
    assert verdicts == [None, None, "uncertain", None, None, "live"]
    assert out[-1] is not None and out[-1].revision == 2


def test_frames_without_an_eye_reading_leave_the_blink_state_alone() -> None:
    d: TrackDecision[int] = TrackDecision(BLINK3)
    for i, e in enumerate([0.9, None, 0.1, None, 0.9]):
        d.observe(Observation(0.5, box(i), SIZE, LivenessScore(0.1, True, e)), lambda: 0)
    assert d.verdict().verdict == "live"
