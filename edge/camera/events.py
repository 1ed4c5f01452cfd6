"""The recognition event a camera emits: one per track decision (schema-versioned JSON)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

RECOGNITION_SCHEMA = "edge-face.recognition/1"

Verdict = Literal["live", "spoof", "uncertain", "unchecked"]


class Match(BaseModel):
    model_config = ConfigDict(extra="forbid")

    uuid: str
    key: str
    collection: str
    score: float  # calibrated similarity 0..1 (same scale as the REST search)


class Liveness(BaseModel):
    model_config = ConfigDict(extra="forbid")

    spoofScore: float | None  # mean of the reliable per-frame scores; None without any
    verdict: Verdict
    votes: int  # reliable frames that voted
    spoofVotes: int
    frames: int  # frames scored, reliable or not


class RecognitionEvent(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    schema_: str = Field(RECOGNITION_SCHEMA, alias="schema")
    eventId: str
    time: str
    deviceId: str
    camera: str
    trackId: int
    revision: int  # 1 for a track's first decision, +1 each time the decision changes
    decision: Literal["known", "unknown"]
    match: Match | None
    threshold: float
    liveness: Liveness
    quality: float  # 0..1 of the frame the identity was decided on
    position: dict[str, int]  # {top, left, width, height} in that frame
    frameSize: dict[str, int]
    firstSeenSourceS: float  # source time of the track's first frame (file position for files)
    decidedSourceS: float
    latencyMs: float  # capture of the track's first frame -> decision, measured on this box

    def payload(self) -> dict[str, object]:
        return self.model_dump(by_alias=True)
