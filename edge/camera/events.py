"""What a camera decided about one track: typed values, one per track decision.

The camera says who (or that nobody known) stood in front of it, how sure the liveness
votes were, and on which frame; how that travels (the versioned MQTT JSON of
`events/recognition`, or a line on stdout) is rendered by `edge.camera.payload`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from edge.vision.geometry import PixelBox

Verdict = Literal["live", "spoof", "uncertain", "unchecked"]

__all__ = ["LivenessVerdict", "Match", "RecognitionEvent", "Verdict"]


@dataclass(frozen=True)
class Match:
    """The best enrolled entity, at or above the threshold."""

    uuid: str
    key: str
    collection: str
    score: float  # calibrated similarity 0..1 (same scale as the REST search)


@dataclass(frozen=True)
class LivenessVerdict:
    """The liveness votes of a track's frames, and what they add up to."""

    spoof_score: float | None  # mean of the reliable per-frame scores; None without any
    verdict: Verdict
    votes: int  # reliable frames that voted
    spoof_votes: int
    frames: int  # frames scored, reliable or not


@dataclass(frozen=True)
class RecognitionEvent:
    """One track decision."""

    event_id: str
    time: datetime  # UTC, when the decision was made
    device_id: str
    camera: str
    track_id: int
    revision: int  # 1 for a track's first decision, +1 each time the decision changes
    decision: Literal["known", "unknown"]
    match: Match | None
    threshold: float
    liveness: LivenessVerdict
    quality: float  # 0..1 of the frame the identity was decided on
    position: PixelBox  # the face in that frame
    frame_size: tuple[int, int]  # (width, height) of that frame
    first_seen_source_s: float  # source time of the track's first frame (file position)
    decided_source_s: float
    latency_ms: float  # capture of the track's first frame -> decision, measured on this box
