"""Frame sources: URL (MJPEG over HTTP), file, folder; newest-frame slot; reconnect."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from camera_video import background
from mjpeg_stream import MjpegServer
from prom_text import sample

from edge.camera.sources import Capture, parse_source
from edge.metrics import REGISTRY


def numbered_frames(n: int) -> list[np.ndarray]:
    out = []
    for i in range(n):
        f = background()
        cv2.putText(f, str(i), (100, 300), cv2.FONT_HERSHEY_SIMPLEX, 8, (255, 255, 255), 20)
        out.append(f)
    return out


def test_parse_source_kinds(tmp_path: Path) -> None:
    (tmp_path / "clip.avi").write_bytes(b"x")
    assert parse_source("0").kind == "v4l2"
    assert parse_source("rtsp://cam/stream").kind == "url"
    assert parse_source("http://10.0.0.2/video.mjpg").kind == "url"
    assert parse_source("videotestsrc ! videoconvert ! appsink").kind == "gstreamer"
    assert parse_source("gst:nvarguscamerasrc ! appsink").target == "nvarguscamerasrc ! appsink"
    assert parse_source(str(tmp_path)).kind == "folder"
    assert parse_source(str(tmp_path / "clip.avi")).kind == "file"
    with pytest.raises(ValueError, match="not a device"):
        parse_source(str(tmp_path / "missing.mp4"))


def test_mjpeg_url_keeps_only_the_newest_frame_and_reconnects() -> None:
    server = MjpegServer(numbered_frames(4), fps=20).start()
    port = server.httpd.server_address[1]
    name = f"ip-{time.monotonic_ns()}"  # the metrics registry is process-wide: a fresh label
    cap = Capture(parse_source(server.url), backoff_min_s=0.2, backoff_max_s=0.4, name=name)
    cap.start()
    try:
        first = cap.next_frame(0, timeout=10)
        assert first is not None and first.image.shape == (720, 1280, 3)
        time.sleep(1.0)  # consumer busy: frames pile up in the stream, not in memory
        later = cap.next_frame(first.seq, timeout=5)
        assert later is not None and later.seq > first.seq + 5
        assert cap.stats.frames_dropped >= later.seq - first.seq - 2
        assert cap.stats.state == "streaming" and cap.stats.fps > 5

        server.stop()  # the camera goes away ...
        deadline = time.monotonic() + 10
        while cap.stats.reconnects == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert cap.stats.reconnects >= 1 and cap.stats.state == "reconnecting"
        # ... and comes back on the same address.
        server = MjpegServer(numbered_frames(2), fps=20, port=port).start()
        seen = cap.stats.frames_read
        deadline = time.monotonic() + 15
        while cap.stats.frames_read <= seen and time.monotonic() < deadline:
            time.sleep(0.05)
        assert cap.stats.frames_read > seen and cap.stats.state == "streaming"
        cap.stop()
        # The Prometheus series count exactly what the capture's own stats counted.
        text = REGISTRY.render()
        assert sample(text, "edge_camera_reconnects_total", camera=name) == cap.stats.reconnects
        assert sample(text, "edge_camera_frames_read_total", camera=name) == cap.stats.frames_read
        dropped = sample(text, "edge_camera_frames_dropped_total", camera=name)
        assert dropped == cap.stats.frames_dropped > 0
    finally:
        cap.stop()
        server.stop()


def test_file_source_lockstep_delivers_every_frame_in_order(tmp_path: Path) -> None:
    path = tmp_path / "n.avi"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (1280, 720))
    for f in numbered_frames(10):
        w.write(f)
    w.release()
    cap = Capture(parse_source(str(path)), realtime=False).start()
    seqs, ts = [], []
    last = 0
    while (f := cap.next_frame(last, timeout=5)) is not None:
        seqs.append(f.seq)
        ts.append(f.ts)
        last = f.seq
    assert seqs == list(range(1, 11))
    assert ts == pytest.approx([i / 25 for i in range(10)])
    assert cap.ended and cap.stats.frames_dropped == 0


def test_realtime_file_source_drops_frames_for_a_slow_consumer(tmp_path: Path) -> None:
    path = tmp_path / "n.avi"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (320, 240))
    for _ in range(25):
        w.write(np.zeros((240, 320, 3), np.uint8))
    w.release()
    cap = Capture(parse_source(str(path)), realtime=True).start()
    got = []
    last = 0
    while (f := cap.next_frame(last, timeout=5)) is not None:
        got.append(f.seq)
        last = f.seq
        time.sleep(0.2)  # a worker five times slower than the stream
    assert cap.stats.frames_read == 25
    assert len(got) < 12 and cap.stats.frames_dropped == 25 - len(got)


def test_folder_source_reads_images_in_name_order(tmp_path: Path) -> None:
    for i, f in enumerate(numbered_frames(3)):
        cv2.imwrite(str(tmp_path / f"{i:03d}.png"), cv2.resize(f, (320, 180)))
    (tmp_path / "notes.txt").write_text("not an image")
    cap = Capture(parse_source(str(tmp_path)), realtime=False).start()
    frames = []
    last = 0
    while (f := cap.next_frame(last, timeout=5)) is not None:
        frames.append(f.image)
        last = f.seq
    assert len(frames) == 3 and all(f.shape == (180, 320, 3) for f in frames)
