"""The camera's typed decision rendered as the versioned `events/recognition` JSON."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from pydantic import ValidationError

from edge.camera.events import LivenessVerdict, Match, RecognitionEvent
from edge.camera.payload import RECOGNITION_SCHEMA, RecognitionPayload, recognition_payload
from edge.vision.geometry import PixelBox


def _event(match: Match | None) -> RecognitionEvent:
    return RecognitionEvent(
        event_id="e-1",
        time=datetime(2026, 1, 2, 3, 4, 5, 678_901, tzinfo=timezone.utc),
        device_id="dev-1",
        camera="door",
        track_id=7,
        revision=2,
        decision="known" if match else "unknown",
        match=match,
        threshold=0.9,
        liveness=LivenessVerdict(
            spoof_score=0.12, verdict="live", votes=3, spoof_votes=0, frames=4
        ),
        quality=0.8,
        position=PixelBox(left=10, top=20, width=100, height=120),
        frame_size=(1280, 720),
        first_seen_source_s=1.5,
        decided_source_s=2.25,
        latency_ms=310.5,
    )


def test_known_decision_renders_every_wire_name() -> None:
    out = recognition_payload(_event(Match(uuid="u-1", key="guido", collection="", score=0.97)))
    assert out == {
        "schema": RECOGNITION_SCHEMA,
        "eventId": "e-1",
        "time": "2026-01-02T03:04:05.678Z",
        "deviceId": "dev-1",
        "camera": "door",
        "trackId": 7,
        "revision": 2,
        "decision": "known",
        "match": {"uuid": "u-1", "key": "guido", "collection": "", "score": 0.97},
        "threshold": 0.9,
        "liveness": {"spoofScore": 0.12, "verdict": "live", "votes": 3, "spoofVotes": 0,
                     "frames": 4},
        "quality": 0.8,
        "position": {"top": 20, "left": 10, "width": 100, "height": 120},
        "frameSize": {"width": 1280, "height": 720},
        "firstSeenSourceS": 1.5,
        "decidedSourceS": 2.25,
        "latencyMs": 310.5,
    }  # fmt: skip


def test_unknown_decision_has_an_explicit_null_match_and_validates() -> None:
    out = recognition_payload(_event(None))
    assert out["match"] is None and out["decision"] == "unknown"
    assert RecognitionPayload.model_validate(out).eventId == "e-1"
    with pytest.raises(ValidationError):  # the documented shape forbids unknown fields
        RecognitionPayload.model_validate({**out, "extra": 1})
