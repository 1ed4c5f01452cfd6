"""A real `edge-face serve` with one camera whose picture the caller chooses, for the console.

The camera is an MJPEG stream on loopback (as IP cameras serve it) showing an empty wall
until `show()` puts a photo in front of it; so the browser test and the screenshot tool
decide when someone walks past, whatever time the server took to load its models.
"""

from __future__ import annotations

import http.client
import json
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from subprocess import Popen
from typing import Any

import cv2
import yaml

from tests.camera.camera_video import background, place
from tests.camera.mjpeg_stream import MjpegServer
from tests.support.images import read_bgr
from tests.support.net import free_port
from tests.support.servers import serve_process

CAMERA = "door"


@dataclass
class ConsoleBox:
    port: int
    key: str
    proc: Popen[Any]
    camera: MjpegServer
    log: Path

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def show(self, photo: Path | None, height: int = 440) -> None:
        """Put `photo` in front of the camera (None: the empty wall again)."""
        frame = background() if photo is None else place(background(), read_bgr(photo), height)
        self.camera.jpegs = [
            cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 92])[1].tobytes()
        ]

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """The REST API with the api-key, as any client (to check what the console did)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        try:
            data = json.dumps(body).encode() if body is not None else None
            conn.request(method, path, body=data, headers={"api-key": self.key})
            resp = conn.getresponse()
            raw = resp.read()
            kind = resp.getheader("content-type") or ""
            return resp.status, json.loads(raw) if "json" in kind and raw else raw.decode()
        finally:
            conn.close()

    def ready(self) -> bool:
        try:
            return self.call("GET", "/readyz")[0] == 200
        except OSError:
            return False


@contextmanager
def console_box(
    tmp: Path,
    model_dir: Path | None,
    key: str,
    *,
    instance: str = "front",
    device_id: str = "box-1",
    other_keys: dict[str, str] | None = None,
    timeout: float = 300,
) -> Iterator[ConsoleBox]:
    """The server (models from `model_dir`, or its default dir) with camera `door` in
    `instance`; `other_keys` (key -> instance) are more keys of the box."""
    keys = [{"key": key, "instance": instance}]
    keys += [{"key": k, "instance": i} for k, i in (other_keys or {}).items()]
    camera = MjpegServer([background()], fps=10).start()
    config: dict[str, Any] = {
        "device_id": device_id,
        "data_dir": str(tmp / "data"),
        "server": {"host": "127.0.0.1", "api_keys": keys},
        "cameras": [
            {
                "name": CAMERA,
                "source": camera.url,
                "instance": instance,
                "detect_fps": 5,
                "track_timeout_s": 0.6,
            }
        ],
    }
    if model_dir is not None:
        config["models"] = {"dir": str(model_dir)}
    cfg = tmp / "edge.yaml"
    cfg.write_text(yaml.safe_dump(config))
    port = free_port()
    log = tmp / "serve.log"
    proc = serve_process(cfg, port, log)
    box = ConsoleBox(port, key, proc, camera, log)
    try:
        deadline = time.monotonic() + timeout
        while not box.ready():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(
                    f"edge-face serve did not get ready (exit {proc.poll()}):\n{log.read_text()}"
                )
            time.sleep(0.2)
        yield box
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except Exception:
            proc.kill()
        camera.stop()
