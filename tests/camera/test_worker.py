"""The recognition loop on a real video with real models and a real store."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from camera_helpers import Vision

from edge.camera.events import LivenessVerdict, RecognitionEvent
from edge.camera.sources import Capture, parse_source
from edge.camera.worker import CameraWorker
from edge.config import CameraConfig
from edge.engine import Engine, Models
from edge.recognition import Recognition
from edge.store.entities import EntityStore
from tests.support.engine import manifest_without_liveness

FPS = 25.0


def run_video(
    engine: Engine, video: Path, **cam: object
) -> tuple[list[RecognitionEvent], CameraWorker]:
    opts: dict[str, object] = {"detect_fps": 8, "realtime": False, "track_timeout_s": 0.4}
    opts.update(cam)
    cfg = CameraConfig(name="door", source=str(video), **opts)  # type: ignore[arg-type]
    events: list[RecognitionEvent] = []
    rec = Recognition(engine)
    capture = Capture(parse_source(cfg.source), realtime=False, name=cfg.name).start()
    worker = CameraWorker(cfg, capture, rec, events.append, device_id="dev-1").start()
    assert worker.finished.wait(120), "video was not processed"
    capture.stop()
    return events, worker


def segment_of(event: RecognitionEvent, starts: list[tuple[str, int]]) -> str:
    label = starts[0][0]
    for name, first in starts:
        if event.first_seen_source_s >= first / FPS - 1e-6:
            label = name
    return label


def test_one_decision_per_person_with_identity_and_liveness(
    engine: Engine,
    enroll_known: Callable[[EntityStore], dict[str, str]],
    people_video: tuple[Path, list[tuple[str, int]]],
) -> None:
    uuids = enroll_known(engine.store)
    video, starts = people_video
    events, worker = run_video(engine, video)

    by_segment: dict[str, list[RecognitionEvent]] = {}
    for e in events:
        by_segment.setdefault(segment_of(e, starts), []).append(e)
    assert sorted(by_segment) == sorted(name for name, _ in starts), events
    for label, evs in by_segment.items():
        assert len(evs) == 1, (label, evs)  # one event per track
        e = evs[0]
        assert e.revision == 1 and e.camera == "door" and e.device_id == "dev-1"
        if label in uuids:
            assert e.decision == "known" and e.match is not None, (label, e)
            assert e.match.key == label and e.match.uuid == uuids[label]
            assert e.match.score >= e.threshold
            assert e.liveness.verdict == "live", (label, e.liveness)
        else:
            assert e.decision == "unknown" and e.match is None, (label, e)
        if label == "spoof":
            assert e.liveness.verdict == "spoof" and e.liveness.spoof_score is not None
            assert e.liveness.spoof_score >= 0.5
        assert e.liveness.votes >= 3 or e.liveness.frames >= 6
        assert 0 < e.quality <= 1
        assert e.position.width > 100 and e.frame_size == (1280, 720)
    # Decisions come from a handful of detection rounds, not every frame of the video.
    assert worker.frames_processed < worker.capture.stats.frames_read / 2
    assert worker.capture.stats.frames_dropped == 0  # lock-step file reading


def test_without_enrolment_everyone_is_unknown(
    engine: Engine, people_video: tuple[Path, list[tuple[str, int]]]
) -> None:
    video, starts = people_video
    events, _ = run_video(engine, video)
    assert len(events) == len(starts)
    assert all(e.decision == "unknown" and e.match is None for e in events)


def test_without_a_liveness_model_each_person_is_decided_on_the_first_frame(
    vision: Vision,
    open_engine: Callable[..., Engine],
    tmp_path: Path,
    enroll_known: Callable[[EntityStore], dict[str, str]],
    people_video: tuple[Path, list[tuple[str, int]]],
) -> None:
    # A pack without the liveness roles: the engine loads no liveness, the camera skips it.
    manifest = manifest_without_liveness(tmp_path / "manifest.json")
    settings = vision.settings.model_copy(deep=True)
    settings.models.manifest = manifest
    engine = open_engine(models=Models.load(settings))
    assert engine.liveness is None
    uuids = enroll_known(engine.store)
    video, starts = people_video
    events, _ = run_video(engine, video)
    assert [segment_of(e, starts) for e in events] == [name for name, _ in starts], events
    for e in events:
        label = segment_of(e, starts)
        assert e.revision == 1 and e.decided_source_s == e.first_seen_source_s, e
        assert e.liveness == LivenessVerdict(
            spoof_score=None, verdict="unchecked", votes=0, spoof_votes=0, frames=0
        )
        assert (e.match.uuid if e.match else None) == uuids.get(label), (label, e)


def test_detection_runs_at_the_configured_rate_on_the_source_clock(
    engine: Engine, tmp_path: Path
) -> None:
    import cv2
    from camera_video import background

    path = tmp_path / "empty.avi"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (1280, 720))
    for _ in range(100):  # 4 s of an empty scene
        w.write(background())
    w.release()
    events, worker = run_video(engine, path, detect_fps=5)
    assert events == []
    assert worker.capture.stats.frames_read == 100
    assert worker.frames_processed in (20, 21)  # 4 s x 5/s, on the file's own clock


def test_blink_rule_holds_back_live_verdicts_of_tracks_that_never_blink(
    engine: Engine,
    enroll_known: Callable[[EntityStore], dict[str, str]],
    people_video: tuple[Path, list[tuple[str, int]]],
) -> None:
    """The video's people are still photos: with `liveness_blink` none of them is `live`,
    and the photo attack stays `spoof` (a blink rule never clears passive evidence)."""
    enroll_known(engine.store)
    video, starts = people_video
    events, worker = run_video(engine, video, liveness_blink=True)
    assert worker.rules.blink
    verdicts = {segment_of(e, starts): e.liveness.verdict for e in events}
    assert verdicts["spoof"] == "spoof"
    people = [v for label, v in verdicts.items() if label != "spoof"]
    assert people and all(v == "uncertain" for v in people), verdicts


def test_worker_reads_eye_openness_for_the_blink_rule(engine: Engine, testdata: Path) -> None:
    """Open and closed (Yale `sleepy`) eyes of one person, through the worker's own path."""
    import json

    import cv2

    files = json.loads((testdata / "SOURCES.json").read_text())["files"]
    by_cond = {
        f["source_path"].rsplit(".", 1)[-1]: testdata / f["file"]
        for f in files
        if f["file"].startswith("faces_by_identity/yale_subject10/")
    }
    rec = Recognition(engine)
    cfg = CameraConfig(name="door", source="0", liveness_blink=True)
    worker = CameraWorker(cfg, Capture(parse_source("0"), name="door"), rec, print, device_id="d")
    readings = {}
    for cond in ("normal", "sleepy"):
        img = cv2.imread(str(by_cond[cond]), cv2.IMREAD_COLOR)
        face = max(rec.detect_frame(img), key=lambda f: f.area)
        readings[cond] = worker._eyes_open(img, face)
    assert readings["normal"] is not None and readings["sleepy"] is not None
    assert readings["normal"] >= 0.7 > 0.3 >= readings["sleepy"], readings
