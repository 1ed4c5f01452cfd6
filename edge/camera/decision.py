"""When a camera decides about a track, and what: the per-track rules as a pure state machine.

The threaded loop (`edge.camera.worker`) detects, tracks and runs the models; for every
analysed frame it hands each track's `Observation` to that track's `TrackDecision` and
publishes the `Decision` that comes back, if any. Nothing here starts a thread, reads a
clock or calls a model (time is the frame's source time, recognition is a callback's
answer), so every rule below is tested with hand-built numbers (tests/camera/test_decision.py).

The rules:

- Best frame: the frame with the highest quality so far (strictly higher replaces it, so
  the first of equal frames stays); only then does the caller build its crop (`frame()`).
- Liveness: every scored frame counts in `frames`; only reliable ones (those passing the
  liveness quality gates) vote. Verdict = majority of the votes, a tie goes by the mean
  (mean >= threshold: spoof); no votes: `uncertain`; no liveness model: `unchecked`.
- Blinks (temporal evidence no single frame has): frames may carry the eyes' openness; an
  open, then closed, then open reading on one track is a blink. A photo cannot blink, so
  with `Rules.blink` a `live` verdict needs one (`uncertain` until then); a blink never
  clears a `spoof` verdict (a replayed video blinks).
- Rigid motion (temporal evidence too, `edge.camera.rigid`): frames may carry the face's
  motion since an anchor frame; a track whose face turned out of plane but moved like a
  plane is `flat` (a photo or a screen in the hand). With `Rules.rigid` a `live` verdict
  on a flat track is `spoof`; `depth` never clears a `spoof` verdict (a replayed video
  shows a real head's parallax), and an undecided cue leaves the verdict as it was.
- Due: once `votes` reliable votes are in, or `2 * votes` frames were scored without them
  (then `uncertain`); without a liveness model at once. At track end an undecided track
  seen in at least two detection rounds is decided with what it has (a one-round blip is
  not a person).
- Re-check: after the first decision, identity is searched again only on a frame more than
  `better_frame` times the quality of the one last searched, or on more votes.
- Debounce: a changed decision (identity or verdict) is published, with `revision` + 1,
  only after two evaluations in a row gave it, so one noisy frame cannot flip a person's
  identity back and forth. One decision per track otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np

from edge.camera.events import LivenessVerdict, Match, Verdict
from edge.camera.rigid import PairMotion, RigidEvidence, RigidMotion, RigidVerdict
from edge.vision.geometry import PixelBox

__all__ = [
    "BETTER_FRAME",
    "CLOSED_EYES",
    "OPEN_EYES",
    "BestFrame",
    "Decision",
    "LivenessScore",
    "Observation",
    "Recognize",
    "Rules",
    "TrackDecision",
    "blink_seen",
    "liveness_verdict",
]

BETTER_FRAME = 1.15  # a frame this much better than the one searched re-evaluates identity
# Eye openness (mean P(open) of both eyes) read as open / closed; between: no reading. Far
# apart because the eye-state model misreads about 1 open eye in 6 near its 0.5 threshold.
OPEN_EYES = 0.7
CLOSED_EYES = 0.3

P = TypeVar("P")
Recognize = Callable[[P], Match | None]
"""Searches the best frame's crop: the entity at or above the threshold, None if nobody."""


@dataclass(frozen=True)
class Rules:
    """A camera's decision settings (`CameraConfig`), plus whether liveness is scored."""

    liveness: bool  # False: the pack has no liveness model, verdict "unchecked"
    votes: int = 3  # reliable liveness votes a decision waits for (`liveness_votes`)
    spoof_threshold: float = 0.5  # a spoof score >= this is a spoof vote
    better_frame: float = BETTER_FRAME
    blink: bool = False  # a "live" verdict needs a blink seen on the track
    rigid: bool = False  # a "live" verdict on a track that moved like a plane is "spoof"


@dataclass(frozen=True)
class LivenessScore:
    """One frame's liveness result."""

    score: float  # spoof score 0..1
    reliable: bool  # the face passed the liveness quality gates: this frame votes
    eyes_open: float | None = None  # mean P(open) of both eyes; None: not measured
    motion: PairMotion | None = None  # face motion since the track's anchor frame


@dataclass(frozen=True)
class Observation:
    """What one analysed frame says about one track."""

    quality: float  # best-frame quality 0..1 (`edge.camera.quality.frame_quality`)
    position: PixelBox  # the face, clipped to the frame
    frame_size: tuple[int, int]  # (width, height)
    liveness: LivenessScore | None = None  # None: not scored (no liveness model)


@dataclass(frozen=True)
class BestFrame(Generic[P]):
    """The best frame of a track so far, with the caller's crop of it (never an image here)."""

    quality: float
    position: PixelBox
    frame_size: tuple[int, int]
    crop: P


@dataclass(frozen=True)
class Decision:
    """A decision to publish: the track's first, or a confirmed change (`revision` > 1)."""

    revision: int  # 1, 2, 3 ... per track
    match: Match | None  # None: nobody known
    liveness: LivenessVerdict
    quality: float  # of the frame the identity was decided on
    position: PixelBox  # the face in that frame
    frame_size: tuple[int, int]
    decided_s: float  # source time of the decision, as passed in

    @property
    def known(self) -> bool:
        return self.match is not None


_Key = tuple[str | None, Verdict]  # what a decision is about: (match uuid, verdict)


def blink_seen(openness: list[float]) -> bool:
    """An open, then a closed, then an open reading, in frame order (not a closed-eye photo)."""
    state = 0
    for v in openness:
        if state != 1 and v >= OPEN_EYES:
            if state == 2:
                return True
            state = 1
        elif state == 1 and v <= CLOSED_EYES:
            state = 2
    return False


def liveness_verdict(
    votes: list[float],
    frames: int,
    rules: Rules,
    blinked: bool = False,
    *,
    rigid: RigidVerdict = "undecided",
) -> LivenessVerdict:
    """The verdict of reliable spoof scores `votes` out of `frames` scored frames.

    With `rules.blink`, a live majority without a blink (`blinked`) is only `uncertain`;
    with `rules.rigid`, a live majority on a `flat` track is `spoof`.
    """
    if not rules.liveness:
        return LivenessVerdict(
            spoof_score=None, verdict="unchecked", votes=0, spoof_votes=0, frames=0
        )
    if not votes:
        return LivenessVerdict(
            spoof_score=None, verdict="uncertain", votes=0, spoof_votes=0, frames=frames
        )
    thr = rules.spoof_threshold
    spoof_votes = sum(1 for s in votes if s >= thr)
    mean = float(np.mean(votes))
    is_spoof = mean >= thr if 2 * spoof_votes == len(votes) else 2 * spoof_votes > len(votes)
    verdict: Verdict = "spoof" if is_spoof else "live"
    if verdict == "live" and rules.blink and not blinked:
        verdict = "uncertain"
    if verdict == "live" and rules.rigid and rigid == "flat":
        verdict = "spoof"
    return LivenessVerdict(
        spoof_score=round(mean, 4),
        verdict=verdict,
        votes=len(votes),
        spoof_votes=spoof_votes,
        frames=frames,
    )


class TrackDecision(Generic[P]):
    """The decision state of one track; `P` is the caller's crop type (opaque here).

    Feed every analysed frame to `observe`, then call `update`; call `finish` when the
    track ends. Not thread-safe: the worker holds its lock around every call.
    """

    def __init__(self, rules: Rules) -> None:
        self.rules = rules
        self._best: BestFrame[P] | None = None
        self._votes: list[float] = []  # reliable spoof scores
        self._frames = 0  # frames scored, reliable or not
        self._eyes: list[float] = []  # eye openness per frame that measured it, in order
        self._rigid = RigidMotion()  # frame-pair motions that moved out of plane, in order
        self._published: _Key | None = None
        self._pending: _Key | None = None  # a changed decision seen once
        self._searched_quality = 0.0  # quality of the frame last searched
        self._searched_votes = 0  # votes at the last search; -1 forces a search
        self._revision = 0

    # State --------------------------------------------------------------------------------
    @property
    def best(self) -> BestFrame[P] | None:
        return self._best

    @property
    def decided(self) -> bool:
        """Whether a decision was published for this track."""
        return self._published is not None

    @property
    def revision(self) -> int:
        return self._revision

    @property
    def votes(self) -> int:
        return len(self._votes)

    @property
    def frames(self) -> int:
        return self._frames

    def rigid(self) -> RigidEvidence:
        """What the track's motion says so far (flat, depth or undecided)."""
        return self._rigid.evidence()

    def verdict(self) -> LivenessVerdict:
        rigid = self._rigid.evidence().verdict if self.rules.rigid else "undecided"
        return liveness_verdict(
            self._votes, self._frames, self.rules, blink_seen(self._eyes), rigid=rigid
        )

    def ready(self, *, final: bool = False, seen: int = 0) -> bool:
        """Whether a decision is due (`final`: the track ended after `seen` rounds)."""
        if self._best is None:
            return False
        if final:
            return seen >= 2
        if not self.rules.liveness:
            return True
        n = self.rules.votes
        return len(self._votes) >= n or self._frames >= 2 * n

    # Steps --------------------------------------------------------------------------------
    def observe(self, obs: Observation, frame: Callable[[], P]) -> bool:
        """Take one frame; True when it became the best (`frame()` built its crop)."""
        better = self._best is None or obs.quality > self._best.quality
        if better:
            self._best = BestFrame(obs.quality, obs.position, obs.frame_size, frame())
        if obs.liveness is not None:
            self._frames += 1
            if obs.liveness.reliable:
                self._votes.append(obs.liveness.score)
            if obs.liveness.eyes_open is not None:
                self._eyes.append(obs.liveness.eyes_open)
            if obs.liveness.motion is not None:
                self._rigid.add(obs.liveness.motion)
        return better

    def update(self, recognize: Recognize[P], *, ts: float) -> Decision | None:
        """After `observe`: the decision to publish at source time `ts`, if any."""
        return self._evaluate(recognize, ts, final=False, seen=0)

    def finish(self, recognize: Recognize[P], *, ts: float, seen: int) -> Decision | None:
        """The track ended after `seen` detection rounds: decide if it never was."""
        if self.decided:
            return None
        return self._evaluate(recognize, ts, final=True, seen=seen)

    def recheck(self) -> None:
        """Search again at the next update (the store changed, e.g. this person enrolled)."""
        self._searched_votes = -1

    def _evaluate(
        self, recognize: Recognize[P], ts: float, *, final: bool, seen: int
    ) -> Decision | None:
        if not self.ready(final=final, seen=seen):
            return None
        best = self._best
        assert best is not None  # ready() says so
        if self._published is not None:
            better = best.quality > self._searched_quality * self.rules.better_frame
            more_votes = len(self._votes) > self._searched_votes
            if not (better or more_votes):
                return None
        match = recognize(best.crop)
        live = self.verdict()
        key: _Key = (match.uuid if match is not None else None, live.verdict)
        self._searched_quality, self._searched_votes = best.quality, len(self._votes)
        if self._published is not None:
            if key == self._published:
                self._pending = None
                return None
            if self._pending != key:  # first sighting of a change: wait for confirmation
                self._pending = key
                return None
        self._pending = None
        self._published = key
        self._revision += 1
        return Decision(
            revision=self._revision,
            match=match,
            liveness=live,
            quality=best.quality,
            position=best.position,
            frame_size=best.frame_size,
            decided_s=ts,
        )
