"""`edge-face bench camera`: a 1280x720 25 fps video through the camera path, to MQTT.

Measures, in one run and on the same video:
- edge-face's loop: a paced capture keeping only the newest frame, detection at
  `--detect-fps` (every frame while a face is undecided), decisions per track;
- a naive baseline: every frame queued (FIFO) and analysed (detection every frame),
  the way a first prototype usually reads a camera;
  both with 1 and with N cameras at once (`--cameras`), to show where each one saturates;
- a broker outage of `--outage` seconds during a third pass: every event emitted must
  still arrive (bounded queue, nothing dropped while within its bound).
Figures: processed fps, frames read/dropped, largest backlog, decisions, end-to-end decision
latency from a person's first frame to the MQTT message (p50/p95), CPU and peak RSS.
Each decision is matched to the face it describes (group by time, slot by position); every
appearance decided wrongly (or not at all) is listed with the measured similarity of that
face to its own enrolment and to the nearest other person, so "right id" is explained.
Needs the `mosquitto` binary (a private broker is started on a free loopback port).
"""

from __future__ import annotations

import argparse
import os
import queue
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import psutil

from benchmarks.stats import p, table
from edge.camera.events import RecognitionEvent
from edge.camera.payload import recognition_payload
from edge.camera.sources import Capture, CaptureStats, Frame, SourceSpec, parse_source
from edge.camera.worker import CameraWorker
from edge.config import CameraConfig, Settings, testdata_dir
from edge.engine import Engine
from edge.mqtt.bridge import MqttBridge
from edge.recognition import Recognition
from tests.support.broker import Broker

W, H = 1280, 720
# People with at least two photos: enrolled from the first file and shown with the second, in
# name order ("1.png" then "10.png" where a folder has ten or more).
PEOPLE = [
    "guido_van_rossum", "paul_allen", "matt_damon", "kate_winslet", "jennifer_lopez",
    "halle_berry", "tom_hanks", "james_spader", "jack_dorsey", "angelina_jolie",
    "keanu_reeves", "barack_obama",
]  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=float, default=24.0, help="video length")
    parser.add_argument("--fps", type=float, default=25.0)
    parser.add_argument("--detect-fps", type=float, default=8.0)
    parser.add_argument("--outage", type=float, default=10.0, help="broker outage, seconds")
    parser.add_argument(
        "--data",
        "--testdata",
        dest="testdata",
        type=Path,
        default=None,
        help="labelled test folder (default: $EDGE_TESTDATA)",
    )
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument(
        "--cameras", type=int, nargs="+", default=[1, 4], help="cameras at once, per pass"
    )


# Video ---------------------------------------------------------------------------------------
@dataclass
class Appearance:
    key: str
    first_frame: int
    segment: int
    slot: int  # left to right within the group
    slots: int  # people in the group
    photo: str  # file shown


@dataclass
class Outcome:
    """One wrong result: an appearance decided with the wrong identity, or not at all."""

    appearance: int  # index into the appearance list
    decided: str | None  # matched key; None = "unknown"
    score: float | None  # calibrated score of that match
    missed: bool = False  # no decision arrived for this face


def _imread(path: Path) -> np.ndarray:
    """A test photo as BGR; a missing or unreadable one stops the benchmark, naming it."""
    img = cv2.imread(str(path))
    if img is None:
        raise RuntimeError(f"cannot read {path}: is the testdata complete?")
    return img


def _background() -> np.ndarray:
    y = np.linspace(70, 130, H, dtype=np.float32)[:, None]
    x = np.linspace(0, 30, W, dtype=np.float32)[None, :]
    g = (y + x).astype(np.uint8)
    return np.dstack([g, g + 5, g + 10])


def _compose(photos: list[np.ndarray]) -> np.ndarray:
    out = _background()
    k = len(photos)
    height = {1: 440, 2: 380, 3: 320}[k]
    slot = W // k
    for i, img in enumerate(photos):
        sc = height / img.shape[0]
        im = cv2.resize(
            img, (max(1, round(img.shape[1] * sc)), height), interpolation=cv2.INTER_AREA
        )
        if im.shape[1] > slot - 10:
            cut = (im.shape[1] - (slot - 10)) // 2
            im = im[:, cut : cut + slot - 10]
        x = i * slot + (slot - im.shape[1]) // 2
        y = (H - height) // 2
        out[y : y + height, x : x + im.shape[1]] = im
    return out


def build_video(
    path: Path, testdata: Path, seconds: float, fps: float
) -> tuple[list[Appearance], dict[str, Path]]:
    """1-3 people at once, 2 s per group, 0.6 s empty between groups."""
    fid = testdata / "faces_by_identity"
    photos = {k: sorted((fid / k).iterdir()) for k in PEOPLE}
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (W, H))
    if not writer.isOpened():
        raise RuntimeError("OpenCV cannot write MJPG video")
    bg = _background()
    total = round(seconds * fps)
    gap, show = round(0.6 * fps), round(2.0 * fps)
    n, seg, person = 0, 0, 0
    appearances: list[Appearance] = []
    while n < total:
        for _ in range(min(gap, total - n)):
            writer.write(bg)
            n += 1
        if total - n < show:
            break
        k = seg % 3 + 1
        keys = [PEOPLE[(person + i) % len(PEOPLE)] for i in range(k)]
        person += k
        frame = _compose([_imread(photos[key][1]) for key in keys])
        appearances += [
            Appearance(key, n, seg, i, k, photos[key][1].name) for i, key in enumerate(keys)
        ]
        for _ in range(show):
            writer.write(frame)
            n += 1
        seg += 1
    while n < total:
        writer.write(bg)
        n += 1
    writer.release()
    return appearances, {k: v[0] for k, v in photos.items()}


# Broker + subscriber -------------------------------------------------------------------------
class _Receiver:
    """Persistent-session subscriber: records (monotonic arrival, event) pairs."""

    def __init__(self, port: int, topic: str) -> None:
        import json

        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        self.got: list[tuple[float, dict[str, Any]]] = []
        self._ready = threading.Event()
        c = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"bench-{os.getpid()}",
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        c.on_connect = lambda cl, *_a: cl.subscribe(topic, qos=1)
        c.on_subscribe = lambda *_a: self._ready.set()
        c.on_message = lambda _c, _u, m: self.got.append((time.monotonic(), json.loads(m.payload)))
        c.reconnect_delay_set(0.2, 1)  # type: ignore[arg-type]  # paho says int, sleeps a float
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        c.connect("127.0.0.1", port, 30, clean_start=False, properties=props)
        c.loop_start()
        self.client = c
        if not self._ready.wait(10):
            raise RuntimeError("bench subscriber could not subscribe")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# Runs ----------------------------------------------------------------------------------------
class _FifoCapture:
    """The naive baseline's reader: every frame paced into an unbounded FIFO, none dropped."""

    def __init__(self, path: Path, fps: float) -> None:
        self.spec = SourceSpec("file", str(path))
        self.stats = CaptureStats()
        self.fps = fps
        self.q: queue.Queue[Frame | None] = queue.Queue()
        self.backlog_max = 0
        self.started_at: float | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> _FifoCapture:
        self._thread.start()
        return self

    def _run(self) -> None:
        cap = cv2.VideoCapture(self.spec.target)
        n = 0
        self.started_at = t0 = time.monotonic()
        self.stats.state = "streaming"
        while True:
            wait = t0 + n / self.fps - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            ok, img = cap.read()
            if not ok:
                break
            n += 1
            self.stats.frames_read = n
            self.q.put(Frame(img, n, (n - 1) / self.fps, time.monotonic()))
            self.backlog_max = max(self.backlog_max, self.q.qsize())
        cap.release()
        self.q.put(None)

    @property
    def ended(self) -> bool:
        return self._done.is_set()

    def next_frame(self, after_seq: int, timeout: float) -> Frame | None:
        try:
            f = self.q.get(timeout=timeout)
        except queue.Empty:
            return None
        if f is None:
            self._done.set()
            self.stats.state = "ended"
        return f

    def stop(self) -> None:
        pass


@dataclass
class RunResult:
    name: str
    wall_s: float = 0.0
    processed: int = 0
    frames_read: int = 0
    dropped: int = 0
    backlog_max: int = 0
    events: list[RecognitionEvent] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    correct: int = 0
    decided_people: int = 0
    cpu_pct: float = 0.0
    peak_rss_mb: float = 0.0
    delivered: int = 0
    bridge_dropped: int = 0
    wrong: list[Outcome] = field(default_factory=list)


class _RssSampler:
    def __init__(self) -> None:
        self.proc = psutil.Process()
        self.peak = self.proc.memory_info().rss
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def stop(self) -> float:
        self._stop.set()
        self._t.join()
        return self.peak / 2**20


def _run(
    name: str,
    settings: Settings,
    rec: Recognition,
    video: Path,
    appearances: list[Appearance],
    broker: Broker,
    *,
    fps: float,
    detect_fps: float,
    naive: bool,
    cameras: int = 1,
    outage: tuple[float, float] | None = None,
    time_limit: float,
) -> RunResult:
    device = f"bench-{name}"
    s = settings.model_copy(deep=True)
    s.device_id = device
    s.mqtt.enabled, s.mqtt.port = True, broker.port
    s.mqtt.reconnect_min_s, s.mqtt.reconnect_max_s = 0.2, 1.0
    topic = f"{s.mqtt.prefix}/{device}/events/recognition"
    receiver = _Receiver(broker.port, topic)
    bridge = MqttBridge(s)
    bridge.start()
    bridge.wait_connected(10)
    result = RunResult(name)
    sink_events: list[RecognitionEvent] = []
    lock = threading.Lock()

    def sink(e: RecognitionEvent) -> None:
        with lock:
            sink_events.append(e)
        bridge.publish_event("recognition", recognition_payload(e))

    rss = _RssSampler()
    proc = psutil.Process()
    cpu0 = proc.cpu_times()
    t0 = time.monotonic()
    pairs: list[tuple[Any, CameraWorker]] = []
    for i in range(cameras):
        cfg = CameraConfig(
            name=f"cam{i}", source=str(video), detect_fps=fps if naive else detect_fps,
            track_timeout_s=0.5,
        )  # fmt: skip
        capture: Any = (
            _FifoCapture(video, fps) if naive else Capture(parse_source(str(video)), realtime=True)
        )
        capture.start()
        pairs.append((capture, CameraWorker(cfg, capture, rec, sink, device_id=device).start()))
    if outage is not None:
        time.sleep(outage[0])
        broker.stop()
        time.sleep(outage[1])
        broker.start()
    for _capture, worker in pairs:
        worker.finished.wait(max(0.0, time_limit - (time.monotonic() - t0)))
    result.wall_s = time.monotonic() - t0
    cpu1 = proc.cpu_times()
    for capture, worker in pairs:
        worker.stop(1)
        capture.stop()
    bridge.flush(30)
    deadline = time.monotonic() + 30
    while len(receiver.got) < len(sink_events) and time.monotonic() < deadline:
        time.sleep(0.05)
    bridge.stop()
    receiver.close()
    result.peak_rss_mb = rss.stop()
    result.cpu_pct = 100.0 * ((cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)) / result.wall_s
    result.processed = sum(w.frames_processed for _c, w in pairs)
    result.frames_read = sum(c.stats.frames_read for c, _w in pairs)
    result.dropped = sum(c.stats.frames_dropped for c, _w in pairs)
    result.backlog_max = max(getattr(c, "backlog_max", 1) for c, _w in pairs)
    result.events = sink_events
    result.delivered = len(receiver.got)
    result.bridge_dropped = bridge.queue_stats().dropped
    started = {w.cfg.name: c.started_at or t0 for c, w in pairs}
    # Latency: the segment a track started in -> MQTT arrival of its first decision.
    seg_start = {a.segment: a.first_frame for a in appearances}
    seen_tracks: set[tuple[str, int]] = set()
    decided: set[tuple[str, int]] = set()  # (camera, appearance index)
    for arrived, body in receiver.got:
        track = (body["camera"], body["trackId"])
        if track in seen_tracks:
            continue
        seen_tracks.add(track)
        first_frame = round(body["firstSeenSourceS"] * fps)
        seg = max((sg for sg, f0 in seg_start.items() if f0 <= first_frame + 1), default=None)
        if seg is None:
            continue
        appeared = started[body["camera"]] + seg_start[seg] / fps
        result.latencies_ms.append((arrived - appeared) * 1000.0)
        result.decided_people += 1
        idx = _appearance_of(appearances, seg, body["position"])
        decided.add((body["camera"], idx))
        key = body["match"]["key"] if body["match"] else None
        if key == appearances[idx].key:
            result.correct += 1
        else:
            score = body["match"]["score"] if body["match"] else None
            result.wrong.append(Outcome(idx, key, score))
    for cam in started:
        for i in range(len(appearances)):
            if (cam, i) not in decided:
                result.wrong.append(Outcome(i, None, None, missed=True))
    return result


def _appearance_of(appearances: list[Appearance], segment: int, pos: dict[str, int]) -> int:
    """The appearance whose slot holds the centre of a decided face box."""
    group = [i for i, a in enumerate(appearances) if a.segment == segment]
    k = appearances[group[0]].slots
    slot = min(k - 1, max(0, (pos["left"] + pos["width"] // 2) // (W // k)))
    return next(i for i in group if appearances[i].slot == slot)


def _slot_scores(
    img: np.ndarray, a: Appearance, rec: Recognition, enrolled: dict[str, np.ndarray]
) -> dict[str, float] | None:
    """Calibrated score of the face in `a`'s slot against every enrolled person."""
    slot_w = W // a.slots
    faces = [f for f in rec.detect_frame(img) if (f.box[0] + f.box[2]) / 2 // slot_w == a.slot]
    if not faces:
        return None
    face = max(faces, key=lambda f: f.width)
    emb = rec.embed(rec.align(img, face))
    return {k: rec.similarity(emb, v) for k, v in enrolled.items()}


def _cause(outs: list[Outcome], key: str, own: float, threshold: float) -> str:
    if any(o.decided not in (None, key) for o in outs):
        return "another person matched"
    if any(o.missed for o in outs):
        return "no decision for this face"
    if own < threshold:
        return "known person scored below the threshold: the model's limit on this photo pair"
    return "decided unknown although the still frame matches: a tracking/best-frame fault"


def explain_wrong(
    results: list[RunResult],
    appearances: list[Appearance],
    video: Path,
    rec: Recognition,
    enrolled: dict[str, np.ndarray],
    enrol_names: dict[str, str],
) -> list[str]:
    """One line per appearance that some pass got wrong: what was decided, how often, and the
    similarity of that face (measured on its own frame of the video, which is static for the
    whole group) to its enrolment and to the nearest other enrolled person."""
    per: dict[int, list[Outcome]] = {}
    for r in results:
        for o in r.wrong:
            per.setdefault(o.appearance, []).append(o)
    lines = []
    cap = cv2.VideoCapture(str(video))
    for idx, outs in sorted(per.items()):
        a = appearances[idx]
        cap.set(cv2.CAP_PROP_POS_FRAMES, a.first_frame + 2)
        ok, img = cap.read()
        score = _slot_scores(img, a, rec, enrolled) if ok else None
        if score is None:
            measured, why = "no face detected in its slot", "not detected"
        else:
            own = score[a.key]
            other = max((k for k in score if k != a.key), key=score.__getitem__)
            cmp = "<" if own < rec.threshold else ">="
            measured = (
                f"own enrolment {own:.3f} {cmp} threshold {rec.threshold:.2f}, "
                f"nearest other {other} {score[other]:.3f}"
            )
            why = _cause(outs, a.key, own, rec.threshold)
        got = sorted({o.decided or ("missed" if o.missed else "unknown") for o in outs})
        lines.append(
            f"  {a.key} (group {a.segment}, face {a.slot + 1} of {a.slots}, shown {a.photo}, "
            f"enrolled {enrol_names[a.key]}): {', '.join(got)} in {len(outs)} decisions; "
            f"{measured}; {why}"
        )
    cap.release()
    return lines


def run(settings: Settings, args: argparse.Namespace) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="edge-bench-camera-"))
    try:
        video = tmp / "people.avi"
        appearances, enrol_photos = build_video(
            video, testdata_dir(args.testdata, "bench camera"), args.seconds, args.fps
        )
        bench = settings.model_copy(deep=True)
        bench.store.path = tmp / "store.sqlite3"  # a scratch gallery, never the box's own
        engine = Engine.open(bench)
        engine.warm_up()
        rec = Recognition(engine)
        enrolled: dict[str, np.ndarray] = {}
        for key, photo in enrol_photos.items():
            vector = engine.pipeline.analyze_largest(_imread(photo)).embedding
            if vector is None:  # analyze_largest embeds unless told not to
                raise RuntimeError(f"no embedding for {photo.name}")
            enrolled[key] = vector
            rec.enrol("default", vector, key=key, collection="", metadata=[], ttl=-1)
        if not Path(shutil.which("mosquitto") or "/usr/sbin/mosquitto").exists():
            raise SystemExit("bench camera needs the mosquitto binary")
        broker = Broker(tmp / "broker")
        broker.start()
        limit = args.seconds * 4 + 30
        common = {"fps": args.fps, "detect_fps": args.detect_fps, "time_limit": limit}
        results: list[tuple[int, RunResult]] = []
        for n in args.cameras:
            for naive in (False, True) if not args.skip_baseline else (False,):
                label = "naive" if naive else "edge-face"
                r = _run(label, settings, rec, video, appearances, broker, naive=naive,
                         cameras=n, **common)  # fmt: skip
                results.append((n, r))
        outage = None
        if args.outage > 0:
            outage = _run(
                "outage", settings, rec, video, appearances, broker, naive=False,
                outage=(min(4.0, args.seconds / 4), args.outage), **common,
            )  # fmt: skip
        broker.stop()
        runs = [r for _n, r in results] + ([outage] if outage is not None else [])
        enrol_names = {k: v.name for k, v in enrol_photos.items()}
        wrong_lines = explain_wrong(runs, appearances, video, rec, enrolled, enrol_names)
        engine.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    segs = len({a.segment for a in appearances})
    print(
        f"bench camera: {W}x{H} @ {args.fps:g} fps, {args.seconds:g} s video, {len(appearances)} "
        f"person appearances in {segs} groups of 1-3, detect_fps {args.detect_fps:g}, "
        f"backend {settings.models.backend}, load average {os.getloadavg()[0]:.2f}"
    )
    rows = []
    for n, r in results:
        lat = np.asarray(r.latencies_ms)
        rows.append([
            r.name, n, r.processed / r.wall_s, r.frames_read, r.processed, r.dropped,
            r.backlog_max, f"{r.decided_people}/{len(appearances) * n}",
            f"{r.correct}/{r.decided_people}", p(lat, 50), p(lat, 95), r.cpu_pct,
            r.peak_rss_mb, r.wall_s,
        ])  # fmt: skip
    headers = [
        "run", "cams", "proc fps", "read", "analysed", "dropped", "backlog max",
        "people decided", "right id", "p50 ms", "p95 ms", "CPU %", "peak RSS MB", "wall s",
    ]  # fmt: skip
    print(table(headers, rows))
    if wrong_lines:
        print(f"wrong or missing decisions, by appearance (all {len(runs)} passes):")
        print("\n".join(wrong_lines))
    by = {(n, r.name): r for n, r in results}
    for n in args.cameras:
        ours, naive_run = by.get((n, "edge-face")), by.get((n, "naive"))
        if ours and naive_run and ours.latencies_ms and naive_run.latencies_ms:
            naive_p50 = p(np.asarray(naive_run.latencies_ms), 50)
            ratio = naive_p50 / p(np.asarray(ours.latencies_ms), 50)
            cpu = naive_run.cpu_pct / max(ours.cpu_pct, 1e-9)
            print(
                f"{n} camera(s): decision latency p50 naive/edge-face {ratio:.2f}x, "
                f"CPU naive/edge-face {cpu:.2f}x"
            )
    if outage is not None:
        print(
            f"broker outage {args.outage:g} s: events emitted {len(outage.events)}, delivered "
            f"{outage.delivered}, dropped by the queue {outage.bridge_dropped} "
            f"(bound {settings.mqtt.queue_limit})"
        )
    return 0
