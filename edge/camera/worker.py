"""The per-camera recognition loop: detect at a set rate, track, decide once per track.

While a new face is still undecided the loop analyses every frame it can get (newest
first, so it never falls behind), which brings the decision in after a few frame periods;
once every face in view is decided it drops back to `detect_fps` to follow them cheaply.

This module is the threaded part: capture, the image work (`edge.recognition`, the same
service the REST API uses: fast detector, calibrated score, threshold rule), the tracker,
events and metrics. When a track's decision is due and what it is (best frame, liveness votes,
re-checks, the two-in-a-row debounce) is decided by `edge.camera.decision`, a pure state
machine fed one observation per track and frame.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np

from edge.camera.decision import (
    Decision,
    LivenessScore,
    Observation,
    Rules,
    TrackDecision,
)
from edge.camera.events import Match, RecognitionEvent
from edge.camera.metrics import (
    DECISION_LATENCY,
    DECISIONS,
    FRAME_SECONDS,
    FRAMES_PROCESSED,
)
from edge.camera.quality import frame_quality
from edge.camera.rigid import PairMotion, TrackMotion
from edge.camera.sources import Capture, Frame
from edge.camera.tracker import Track, Tracker
from edge.config import CameraConfig
from edge.errors import EdgeError
from edge.recognition import Recognition
from edge.store.entities import Entity
from edge.vision.details import DetailAnalyzer
from edge.vision.types import Face

log = logging.getLogger(__name__)

EventSink = Callable[[RecognitionEvent], None]


@dataclass
class _Crop:
    """A track's best face, aligned to 112x112 (in memory only while the track lives)."""

    aligned: np.ndarray
    embedding: np.ndarray | None = None  # computed once, on the first search or enrolment

    def embed(self, recognition: Recognition) -> np.ndarray:
        if self.embedding is None:
            self.embedding = recognition.embed(self.aligned)
        return self.embedding


@dataclass
class _TrackState:
    track: Track
    decision: TrackDecision[_Crop]
    motion: TrackMotion = field(default_factory=TrackMotion)  # for the rigid-motion rule


class CameraWorker:
    def __init__(
        self,
        cfg: CameraConfig,
        capture: Capture,
        recognition: Recognition,
        sink: EventSink,
        *,
        device_id: str,
    ) -> None:
        self.cfg = cfg
        self.capture = capture
        self.recognition = recognition
        self.sink = sink
        self.device_id = device_id
        self.tracker = Tracker(timeout_s=cfg.track_timeout_s)
        self.rules = Rules(
            liveness=recognition.has_liveness,
            votes=cfg.liveness_votes,
            spoof_threshold=cfg.spoof_threshold,
            blink=cfg.liveness_blink,
            rigid=cfg.liveness_rigid,
        )
        self._states: dict[int, _TrackState] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"camera-{cfg.name}", daemon=True)
        self.frames_processed = 0
        self.events_emitted = 0
        self.process_seconds = 0.0
        self.finished = threading.Event()

    # Lifecycle ----------------------------------------------------------------------------
    def start(self) -> CameraWorker:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def stats(self) -> dict[str, object]:
        return {
            "name": self.cfg.name,
            "source": self.capture.spec.kind,
            **self.capture.stats.as_dict(),
            "framesProcessed": self.frames_processed,
            "events": self.events_emitted,
            "tracks": len(self._states),
        }

    # Loop ---------------------------------------------------------------------------------
    def _run(self) -> None:
        period = 1.0 / self.cfg.detect_fps
        last_seq, next_due = 0, float("-inf")
        try:
            while not self._stop.is_set():
                frame = self.capture.next_frame(last_seq, timeout=0.25)
                if frame is None:
                    if self.capture.ended:
                        break
                    continue
                last_seq = frame.seq
                scheduled = frame.ts >= next_due
                if not scheduled and not (self.cfg.burst and self._undecided()):
                    continue
                if scheduled:  # keep the average rate; restart the grid after a stall
                    late = frame.ts - next_due >= period
                    next_due = frame.ts + period if late else next_due + period
                t0 = time.perf_counter()
                try:
                    self.process(frame)
                except Exception:
                    log.exception("camera %s: frame %d failed", self.cfg.name, frame.seq)
                took = time.perf_counter() - t0
                self.process_seconds += took
                self.frames_processed += 1
                FRAMES_PROCESSED.inc(camera=self.cfg.name)
                FRAME_SECONDS.observe(took, camera=self.cfg.name)
            with self._lock:
                for t in self.tracker.end_all():
                    self._finish(t, None)
        finally:
            self.finished.set()

    def _undecided(self) -> bool:
        with self._lock:
            return any(not st.decision.decided for st in self._states.values())

    def process(self, frame: Frame) -> None:
        img = frame.image
        faces = self.recognition.detect_frame(img)
        with self._lock:
            updated, ended = self.tracker.update(faces, frame.ts, frame.captured)
            for t in ended:
                self._finish(t, frame)
            for t in updated:
                st = self._states.get(t.id)
                if st is None:
                    st = self._states[t.id] = _TrackState(t, TrackDecision(self.rules))
                self._observe(st, img, t.face)
                self._publish(st, st.decision.update(self._recognize, ts=frame.ts))

    def _observe(self, st: _TrackState, img: np.ndarray, face: Face) -> None:
        """Measure one frame for the state machine; the crop is built only for a new best."""
        h, w = img.shape[:2]
        quality = frame_quality(img, face)
        sp = self.recognition.spoof(img, face)
        eyes = self._eyes_open(img, face) if sp is not None and self.rules.blink else None
        motion = self._motion(st, img, face) if sp is not None and self.rules.rigid else None
        obs = Observation(
            quality=quality,
            position=face.position(w, h),
            frame_size=(w, h),
            liveness=LivenessScore(float(sp.spoof_score), sp.reliable, eyes, motion)
            if sp is not None
            else None,
        )
        st.decision.observe(obs, lambda: _Crop(self.recognition.align(img, face)))

    def _eyes_open(self, img: np.ndarray, face: Face) -> float | None:
        """Mean P(open) of both eyes (eye-state model), for the blink rule; None without it."""
        details = self.recognition.pipeline.details
        if not isinstance(details, DetailAnalyzer) or not details.has_eyes:
            return None
        left, right = details.eyes.predict(img, details.landmarks.predict(img, face))
        return float(left + right) / 2

    def _motion(self, st: _TrackState, img: np.ndarray, face: Face) -> PairMotion | None:
        """The face's motion since the track's anchor (mesh points followed by their
        pixels), for the rigid-motion rule; None without the mesh or on the first frame."""
        details = self.recognition.pipeline.details
        if not isinstance(details, DetailAnalyzer) or not details.has_mesh:
            return None
        return st.motion.see(img, details.mesh.predict(img, face).points)

    def _recognize(self, crop: _Crop) -> Match | None:
        """Search the best frame: the entity at or above the threshold, None if nobody."""
        hit = self.recognition.best_match(
            self.cfg.instance, self.cfg.collection, crop.embed(self.recognition)
        )
        if hit is None:
            return None
        e = hit.entity
        return Match(uuid=e.uuid, key=e.key, collection=e.collection, score=round(hit.score, 4))

    def _publish(self, st: _TrackState, decision: Decision | None) -> None:
        if decision is None:
            return
        event = RecognitionEvent(
            event_id=str(uuid.uuid4()),
            time=datetime.now(timezone.utc),
            device_id=self.device_id,
            camera=self.cfg.name,
            track_id=st.track.id,
            revision=decision.revision,
            decision="known" if decision.known else "unknown",
            match=decision.match,
            threshold=self.recognition.threshold,
            liveness=decision.liveness,
            quality=round(decision.quality, 4),
            position=decision.position,
            frame_size=decision.frame_size,
            first_seen_source_s=round(st.track.first_ts, 3),
            decided_source_s=round(decision.decided_s, 3),
            latency_ms=round((time.monotonic() - st.track.first_captured) * 1000, 1),
        )
        self.events_emitted += 1
        DECISIONS.inc(camera=self.cfg.name, decision=event.decision)
        if event.revision == 1:
            DECISION_LATENCY.observe(event.latency_ms / 1000.0, camera=self.cfg.name)
        try:
            self.sink(event)
        except Exception:
            log.exception("camera %s: event sink failed", self.cfg.name)

    def _finish(self, track: Track, frame: Frame | None) -> None:
        st = self._states.pop(track.id, None)
        if st is not None:
            ts = frame.ts if frame is not None else track.last_ts
            self._publish(st, st.decision.finish(self._recognize, ts=ts, seen=track.hits))

    # Enrolment ----------------------------------------------------------------------------
    def enroll_current(
        self,
        *,
        key: str,
        collection: str = "",
        metadata: list[dict[str, object]] | None = None,
        ttl: int = -1,
        timeout_s: float = 5.0,
    ) -> Entity:
        """Create an entity from the best frame of the best track in view (image not kept).

        Waits up to `timeout_s` for a face; raises EdgeError 223 when none appears.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            with self._lock:
                candidates = [
                    (st.decision.best, st.track)
                    for st in self._states.values()
                    if st.decision.best is not None
                ]
                if candidates:
                    best, track = max(candidates, key=lambda c: (c[0].quality, c[1].hits))
                    vec = best.crop.embed(self.recognition)
                    break
            if time.monotonic() >= deadline or self.finished.is_set():
                raise EdgeError(223, f"no face in view of camera {self.cfg.name!r}")
            time.sleep(0.05)
        entity = self.recognition.enrol(
            self.cfg.instance, vec, key=key, collection=collection, metadata=metadata or [], ttl=ttl
        )
        with self._lock:  # the person in view is now known: let the track decide again
            if (st := self._states.get(track.id)) is not None:
                st.decision.recheck()
        return entity
