"""The per-camera recognition loop: detect at a set rate, track, decide once per track.

While a new face is still undecided the loop analyses every frame it can get (newest
first, so it never falls behind), which brings the decision in after a few frame periods;
once every face in view is decided it drops back to `detect_fps` to follow them cheaply.

A track's decision waits until liveness has `liveness_votes` reliable votes (frames whose
face passes the liveness quality gates), or twice that many frames were scored without
enough reliable ones (verdict "uncertain"), or the track ends. Identity is searched with the
best-quality frame seen so far. Later, a clearly better frame or more votes re-evaluate the
track; a changed decision is emitted only after it was seen on two evaluations in a row
(debounce), so one noisy frame cannot flip a person's identity back and forth.
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

from edge.camera.events import LivenessVerdict, Match, RecognitionEvent
from edge.camera.metrics import (
    DECISION_LATENCY,
    DECISIONS,
    FRAME_SECONDS,
    FRAMES_PROCESSED,
)
from edge.camera.quality import frame_quality
from edge.camera.recognizer import Recognizer
from edge.camera.sources import Capture, Frame
from edge.camera.tracker import Track, Tracker
from edge.config import CameraConfig
from edge.errors import EdgeError
from edge.vision.types import Face

log = logging.getLogger(__name__)

EventSink = Callable[[RecognitionEvent], None]
BETTER_FRAME = 1.15  # a frame this much better than the decided one re-evaluates identity


@dataclass
class _Best:
    quality: float
    aligned: np.ndarray  # 112x112 aligned crop (kept in memory only while the track lives)
    face: Face
    frame_size: tuple[int, int]
    embedding: np.ndarray | None = None


@dataclass
class _TrackState:
    track: Track
    best: _Best | None = None
    scores: list[float] = field(default_factory=list)  # reliable spoof scores
    frames_scored: int = 0
    emitted: tuple[str | None, str] | None = None  # (match uuid, verdict) last emitted
    decided_quality: float = 0.0
    decided_votes: int = 0
    pending: tuple[str | None, str] | None = None  # a changed decision seen once
    revision: int = 0


class CameraWorker:
    def __init__(
        self,
        cfg: CameraConfig,
        capture: Capture,
        recognizer: Recognizer,
        sink: EventSink,
        *,
        device_id: str,
    ) -> None:
        self.cfg = cfg
        self.capture = capture
        self.recognizer = recognizer
        self.sink = sink
        self.device_id = device_id
        self.tracker = Tracker(timeout_s=cfg.track_timeout_s)
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
            return any(st.emitted is None for st in self._states.values())

    def process(self, frame: Frame) -> None:
        img = frame.image
        faces = self.recognizer.detect(img)
        with self._lock:
            updated, ended = self.tracker.update(faces, frame.ts, frame.captured)
            for t in ended:
                self._finish(t, frame)
            for t in updated:
                st = self._states.setdefault(t.id, _TrackState(t))
                self._observe(st, img, t.face)
                self._evaluate(st, frame, final=False)

    def _observe(self, st: _TrackState, img: np.ndarray, face: Face) -> None:
        q = frame_quality(img, face)
        if st.best is None or q > st.best.quality:
            h, w = img.shape[:2]
            st.best = _Best(q, self.recognizer.aligned(img, face), face, (w, h))
        sp = self.recognizer.spoof(img, face)
        if sp is not None:
            st.frames_scored += 1
            score, reliable = sp
            if reliable:
                st.scores.append(score)

    def _verdict(self, st: _TrackState) -> LivenessVerdict:
        if self.recognizer.liveness is None:
            return LivenessVerdict(
                spoof_score=None, verdict="unchecked", votes=0, spoof_votes=0, frames=0
            )
        thr = self.cfg.spoof_threshold
        votes = st.scores
        if not votes:
            return LivenessVerdict(
                spoof_score=None,
                verdict="uncertain",
                votes=0,
                spoof_votes=0,
                frames=st.frames_scored,
            )
        spoof_votes = sum(1 for s in votes if s >= thr)
        mean = float(np.mean(votes))
        is_spoof = mean >= thr if 2 * spoof_votes == len(votes) else 2 * spoof_votes > len(votes)
        return LivenessVerdict(
            spoof_score=round(mean, 4),
            verdict="spoof" if is_spoof else "live",
            votes=len(votes),
            spoof_votes=spoof_votes,
            frames=st.frames_scored,
        )

    def _ready(self, st: _TrackState, final: bool) -> bool:
        if st.best is None:
            return False
        if final:
            return st.track.hits >= 2  # a single-frame blip is not a person
        if self.recognizer.liveness is None:
            return True
        n = self.cfg.liveness_votes
        return len(st.scores) >= n or st.frames_scored >= 2 * n

    def _evaluate(self, st: _TrackState, frame: Frame | None, *, final: bool) -> None:
        if not self._ready(st, final):
            return
        assert st.best is not None
        if st.emitted is not None:
            better = st.best.quality > st.decided_quality * BETTER_FRAME
            more_votes = len(st.scores) > st.decided_votes
            if not (better or more_votes):
                return
        best = st.best
        if best.embedding is None:
            best.embedding = self.recognizer.embed(best.aligned)
        hit = self.recognizer.search(self.cfg.instance, self.cfg.collection, best.embedding)
        known = hit is not None and hit.score >= self.recognizer.threshold
        live = self._verdict(st)
        key = (hit.uuid if known and hit else None, live.verdict)
        st.decided_quality, st.decided_votes = best.quality, len(st.scores)
        if st.emitted is not None:
            if key == st.emitted:
                st.pending = None
                return
            if st.pending != key:  # first sighting of a change: wait for confirmation
                st.pending = key
                return
        st.pending = None
        st.emitted = key
        st.revision += 1
        w, h = best.frame_size
        decided_ts = frame.ts if frame is not None else st.track.last_ts
        event = RecognitionEvent(
            event_id=str(uuid.uuid4()),
            time=datetime.now(timezone.utc),
            device_id=self.device_id,
            camera=self.cfg.name,
            track_id=st.track.id,
            revision=st.revision,
            decision="known" if known else "unknown",
            match=(
                Match(
                    uuid=hit.uuid, key=hit.key, collection=hit.collection, score=round(hit.score, 4)
                )
                if known and hit
                else None
            ),
            threshold=self.recognizer.threshold,
            liveness=live,
            quality=round(best.quality, 4),
            position=best.face.position(w, h),
            frame_size=(w, h),
            first_seen_source_s=round(st.track.first_ts, 3),
            decided_source_s=round(decided_ts, 3),
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
        if st is not None and st.emitted is None:
            self._evaluate(st, frame, final=True)

    # Enrolment ----------------------------------------------------------------------------
    def enroll_current(
        self,
        *,
        key: str,
        collection: str = "",
        metadata: list[dict[str, object]] | None = None,
        ttl: int = -1,
        timeout_s: float = 5.0,
    ) -> object:
        """Create an entity from the best frame of the best track in view (image not kept).

        Waits up to `timeout_s` for a face; raises EdgeError 223 when none appears.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            with self._lock:
                candidates = [s for s in self._states.values() if s.best is not None]
                if candidates:
                    st = max(candidates, key=lambda s: (s.best.quality, s.track.hits))  # type: ignore[union-attr]
                    best = st.best
                    assert best is not None
                    if best.embedding is None:
                        best.embedding = self.recognizer.embed(best.aligned)
                    vec = best.embedding
                    break
            if time.monotonic() >= deadline or self.finished.is_set():
                raise EdgeError(223, f"no face in view of camera {self.cfg.name!r}")
            time.sleep(0.05)
        entity = self.recognizer.enroll(
            self.cfg.instance, vec, key=key, collection=collection, metadata=metadata or [], ttl=ttl
        )
        with self._lock:  # the person in view is now known: let the track decide again
            if st.track.id in self._states:
                st.decided_votes = -1
        return entity
