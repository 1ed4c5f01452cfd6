"""The `events/recognition` payload: a camera's track decision as versioned JSON.

The camera produces typed `RecognitionEvent` values; this is the one place their wire
names live (camelCase, `schema` = "edge-face.recognition/<major>"), so subscribers and the
documentation see one format whether the event goes to the broker or to stdout.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from edge.camera.events import RecognitionEvent, Verdict
from edge.timefmt import iso_utc_ms

RECOGNITION_SCHEMA = "edge-face.recognition/1"

__all__ = ["RECOGNITION_SCHEMA", "RecognitionPayload", "recognition_payload"]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class MatchPayload(_Wire):
    uuid: str
    key: str
    collection: str
    score: float


class LivenessPayload(_Wire):
    spoofScore: float | None
    verdict: Verdict
    votes: int
    spoofVotes: int
    frames: int


class RecognitionPayload(_Wire):
    """The documented shape of one recognition message (also the schema subscribers read)."""

    schema_: str = Field(RECOGNITION_SCHEMA, alias="schema")
    eventId: str
    time: str
    deviceId: str
    camera: str
    trackId: int
    revision: int
    decision: Literal["known", "unknown"]
    match: MatchPayload | None
    threshold: float
    liveness: LivenessPayload
    quality: float
    position: dict[str, int]
    frameSize: dict[str, int]
    firstSeenSourceS: float
    decidedSourceS: float
    latencyMs: float


def recognition_payload(event: RecognitionEvent) -> dict[str, object]:
    """The JSON object published for `event` (keys by alias: `schema`, not `schema_`)."""
    m, lv, p = event.match, event.liveness, event.position
    w, h = event.frame_size
    payload = RecognitionPayload(
        schema_=RECOGNITION_SCHEMA,
        eventId=event.event_id,
        time=iso_utc_ms(event.time),
        deviceId=event.device_id,
        camera=event.camera,
        trackId=event.track_id,
        revision=event.revision,
        decision=event.decision,
        match=(
            MatchPayload(uuid=m.uuid, key=m.key, collection=m.collection, score=m.score)
            if m is not None
            else None
        ),
        threshold=event.threshold,
        liveness=LivenessPayload(
            spoofScore=lv.spoof_score,
            verdict=lv.verdict,
            votes=lv.votes,
            spoofVotes=lv.spoof_votes,
            frames=lv.frames,
        ),
        quality=event.quality,
        position={"top": p.top, "left": p.left, "width": p.width, "height": p.height},
        frameSize={"width": w, "height": h},
        firstSeenSourceS=event.first_seen_source_s,
        decidedSourceS=event.decided_source_s,
        latencyMs=event.latency_ms,
    )
    return payload.model_dump(by_alias=True)
