"""Frame sources: one capture thread per camera that keeps only the newest frame.

Why only the newest: recognition must describe what the camera sees now. A queue of frames
would let a slow worker fall further and further behind a 25 fps stream (latency and memory
growing without bound); a single slot means a slow worker skips frames (counted as drops)
and always works on the present.

Which OpenCV backend opens what:
- a bare integer ("0") is a V4L2 device index (`cv2.CAP_V4L2`);
- rtsp://, rtsps://, http://, https:// URLs go through FFmpeg (MJPEG over HTTP included);
- a string containing " ! " (or starting with "gst:") is a GStreamer pipeline. This needs an
  OpenCV built WITH GStreamer (`cv2.getBuildInformation()` lists "GStreamer: YES"); the pip
  wheels are built without it, so Jetson CSI cameras need JetPack's system OpenCV, e.g.
  `nvarguscamerasrc ! video/x-raw(memory:NVMM),width=1280,height=720,framerate=30/1 !
  nvvidconv ! video/x-raw,format=BGRx ! videoconvert ! video/x-raw,format=BGR ! appsink
  drop=true max-buffers=1`;
- a directory is an image folder (sorted names, shown at `folder_fps`);
- anything else is a video file.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from edge.camera.metrics import FRAMES_DROPPED, FRAMES_READ, RECONNECTS

log = logging.getLogger(__name__)

SourceKind = Literal["v4l2", "url", "gstreamer", "file", "folder"]
_URL_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://", "rtmp://")
_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".pgm", ".ppm", ".tif", ".tiff"}


@dataclass(frozen=True)
class SourceSpec:
    kind: SourceKind
    target: str

    @property
    def live(self) -> bool:
        """Live sources produce frames on their own clock; files only when read."""
        return self.kind in ("v4l2", "url", "gstreamer")


def parse_source(source: str) -> SourceSpec:
    """Classify a `source` string; raises ValueError naming the problem."""
    s = source.strip()
    if not s:
        raise ValueError("source is empty")
    if s.isdigit():
        return SourceSpec("v4l2", s)
    if s.lower().startswith(_URL_SCHEMES):
        return SourceSpec("url", s)
    if s.startswith("gst:"):
        return SourceSpec("gstreamer", s[4:].strip())
    if " ! " in s:
        return SourceSpec("gstreamer", s)
    p = Path(s).expanduser()
    if p.is_dir():
        return SourceSpec("folder", str(p))
    if p.is_file():
        return SourceSpec("file", str(p))
    raise ValueError(f"source {source!r} is not a device index, URL, pipeline, file or folder")


@dataclass
class Frame:
    image: np.ndarray  # BGR uint8
    seq: int  # 1, 2, 3 ... frames read from the source (gaps = frames the worker skipped)
    ts: float  # seconds on the source's timeline: position in a file, monotonic for live
    captured: float  # time.monotonic() when the frame was read


@dataclass
class CaptureStats:
    state: str = "starting"  # starting | streaming | reconnecting | ended | stopped
    frames_read: int = 0
    frames_dropped: int = 0  # replaced in the slot before any consumer took them
    reconnects: int = 0
    fps: float = 0.0  # frames read per second, exponential average
    last_error: str | None = None
    _last_read: float = field(default=0.0, repr=False)

    def as_dict(self) -> dict[str, object]:
        return {
            "state": self.state,
            "framesRead": self.frames_read,
            "framesDropped": self.frames_dropped,
            "reconnects": self.reconnects,
            "fps": round(self.fps, 2),
            "lastError": self.last_error,
        }


class _FolderReader:
    """An image folder behaving like a video at a fixed rate."""

    def __init__(self, folder: str, fps: float) -> None:
        self.files = sorted(
            p for p in Path(folder).iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES
        )
        self.fps = fps
        self.i = 0

    def isOpened(self) -> bool:
        return bool(self.files)

    def read(self) -> tuple[bool, np.ndarray | None]:
        while self.i < len(self.files):
            img = cv2.imread(str(self.files[self.i]), cv2.IMREAD_COLOR)
            self.i += 1
            if img is not None:
                return True, img
        return False, None

    def get(self, prop: int) -> float:
        return self.fps if prop == cv2.CAP_PROP_FPS else 0.0

    def release(self) -> None:
        pass


class Capture:
    """Reads a source on its own thread into a one-frame slot.

    `realtime=True` paces file sources at their own fps (they then behave like a camera:
    a slow consumer loses frames). `realtime=False` hands every frame of a file to the
    consumer in order (lock-step), which makes tests and offline processing deterministic.
    Live sources are always real time.
    """

    def __init__(
        self,
        spec: SourceSpec,
        *,
        realtime: bool = True,
        backoff_min_s: float = 0.5,
        backoff_max_s: float = 30.0,
        folder_fps: float = 2.0,
        name: str = "camera",
        on_state: Callable[[], None] | None = None,
    ) -> None:
        self.spec = spec
        self.realtime = realtime or spec.live
        self.backoff_min_s = backoff_min_s
        self.backoff_max_s = backoff_max_s
        self.folder_fps = folder_fps
        self.name = name
        self.on_state = on_state  # called (capture thread, no lock held) when state changes
        self.stats = CaptureStats()
        self.source_fps: float = 0.0
        self.started_at: float | None = None  # monotonic time of the first frame of a stream
        self._cond = threading.Condition()
        self._slot: Frame | None = None
        self._taken = True
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"capture-{name}", daemon=True)

    # Lifecycle ----------------------------------------------------------------------------
    def start(self) -> Capture:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        self._thread.join(timeout)
        if self.stats.state != "ended":
            self._set_state("stopped")

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def ended(self) -> bool:
        return self.stats.state in ("ended", "stopped")

    # Consumer side ------------------------------------------------------------------------
    def next_frame(self, after_seq: int, timeout: float) -> Frame | None:
        """The newest frame with seq > after_seq, waiting up to `timeout`; None if none."""
        with self._cond:
            ok = self._cond.wait_for(
                lambda: (
                    (self._slot is not None and self._slot.seq > after_seq)
                    or self.ended
                    or self._stop.is_set()
                ),
                timeout=timeout,
            )
            if not ok or self._slot is None or self._slot.seq <= after_seq:
                return None
            self._taken = True
            self._cond.notify_all()
            return self._slot

    # Producer side ------------------------------------------------------------------------
    def _open(self) -> cv2.VideoCapture | _FolderReader:
        kind, target = self.spec.kind, self.spec.target
        if kind == "v4l2":
            cap = cv2.VideoCapture(int(target), cv2.CAP_V4L2)
        elif kind == "url":
            cap = cv2.VideoCapture(target, cv2.CAP_FFMPEG)
        elif kind == "gstreamer":
            cap = cv2.VideoCapture(target, cv2.CAP_GSTREAMER)
        elif kind == "folder":
            return _FolderReader(target, self.folder_fps)
        else:
            cap = cv2.VideoCapture(target)
        if self.spec.live:
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # do not let the driver queue frames either
        return cap

    def _put(self, img: np.ndarray, ts: float) -> None:
        now = time.monotonic()
        st = self.stats
        with self._cond:
            if not self.realtime:
                # Lock-step: wait for the consumer to take the previous frame.
                self._cond.wait_for(lambda: self._taken or self._stop.is_set())
            elif not self._taken:
                st.frames_dropped += 1
                FRAMES_DROPPED.inc(camera=self.name)
            st.frames_read += 1
            FRAMES_READ.inc(camera=self.name)
            self._slot = Frame(img, st.frames_read, ts, now)
            self._taken = False
            self._cond.notify_all()
        if st._last_read:
            inst = 1.0 / max(now - st._last_read, 1e-6)
            st.fps = inst if st.fps == 0 else 0.9 * st.fps + 0.1 * inst
        st._last_read = now

    def _run(self) -> None:
        delay = self.backoff_min_s
        while not self._stop.is_set():
            cap = self._open()
            if not cap.isOpened():
                self.stats.last_error = f"cannot open {self.spec.kind} source"
                if not self.spec.live:
                    log.error("camera %s: %s %s", self.name, self.stats.last_error, self.spec)
                    self._finish("ended")
                    return
                self._backoff(delay)
                delay = min(delay * 2, self.backoff_max_s)
                continue
            fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
            self.source_fps = fps if 0 < fps < 1000 else 25.0
            self._set_state("streaming")
            read_any = self._pump(cap)
            cap.release()
            if self._stop.is_set():
                return  # stopped, not ended: stop() records that
            if not self.spec.live:
                self._finish("ended")
                return
            if read_any:
                delay = self.backoff_min_s  # the stream worked: start backing off afresh
            self.stats.last_error = "stream dropped"
            self._backoff(delay)
            delay = min(delay * 2, self.backoff_max_s)

    def _pump(self, cap: cv2.VideoCapture | _FolderReader) -> bool:
        """Read until the stream ends or stop; True if at least one frame was read."""
        n = 0
        t0 = time.monotonic()
        if self.started_at is None:
            self.started_at = t0
        while not self._stop.is_set():
            if not self.spec.live and self.realtime:
                due = t0 + n / self.source_fps
                wait = due - time.monotonic()
                if wait > 0:
                    self._stop.wait(wait)
            ok, img = cap.read()
            if not ok or img is None:
                return n > 0
            ts = time.monotonic() if self.spec.live else n / self.source_fps
            self._put(img, ts)
            n += 1
        return n > 0

    def _backoff(self, delay: float) -> None:
        self._set_state("reconnecting")
        self.stats.reconnects += 1
        RECONNECTS.inc(camera=self.name)
        log.warning("camera %s: %s; retrying in %.1fs", self.name, self.stats.last_error, delay)
        self._stop.wait(delay)

    def _finish(self, state: str) -> None:
        with self._cond:
            changed = self.stats.state != state
            self.stats.state = state
            self._cond.notify_all()
        if changed:
            self._state_changed()

    def _set_state(self, state: str) -> None:
        if self.stats.state != state:
            self.stats.state = state
            self._state_changed()

    def _state_changed(self) -> None:
        """Tell the owner (e.g. to re-publish the MQTT status); it must not block."""
        if self.on_state is not None:
            try:
                self.on_state()
            except Exception:
                log.exception("camera %s: state listener failed", self.name)
