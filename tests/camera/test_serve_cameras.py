"""`edge-face serve` as a real subprocess with MQTT (real mosquitto) and a video-file camera.

The path under test is the server's own composition: `edge.api.server` enters
`edge_services(...)`, so REST, cameras, the bridge and /metrics share one store and one
process. The camera is configured disabled at start and enabled through the MQTT `reload`
command once the person is enrolled over REST, so the video plays after the enrolment
however long the server takes to load its models.
"""

from __future__ import annotations

import base64
import http.client
import json
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import yaml
from camera_helpers import KNOWN
from camera_video import Segment, write_video
from prom_text import sample

from tests.support.broker import Broker, Subscriber
from tests.support.images import read_bgr
from tests.support.net import free_port
from tests.support.servers import serve_process

KEY = "serve-camera-key-0123456789"
DEVICE = "serve-dev"
BASE = f"edge-face/{DEVICE}"


def call(port: int, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"api-key": KEY, "content-type": "application/json"}
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
        ctype = resp.getheader("content-type") or ""
        return resp.status, json.loads(raw) if "json" in ctype else raw.decode()
    finally:
        conn.close()


def wait(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def ready(port: int) -> bool:
    try:
        return call(port, "GET", "/readyz")[0] == 200
    except OSError:
        return False


def test_serve_with_mqtt_and_a_file_camera(
    tmp_path: Path, model_dir: Path, testdata: Path, broker: Broker
) -> None:
    person, enrol_photo, shown_photo = KNOWN["guido"]
    faces = testdata / "faces_by_identity" / person
    video, _starts = write_video(
        tmp_path / "door", [Segment("guido", [read_bgr(faces / shown_photo)], [440], 2.0)]
    )
    frames = int(cv2.VideoCapture(str(video)).get(cv2.CAP_PROP_FRAME_COUNT))
    camera = {"name": "door", "source": str(video), "realtime": False, "track_timeout_s": 0.4}
    config: dict[str, Any] = {
        "device_id": DEVICE,
        "data_dir": str(tmp_path / "data"),
        "models": {"dir": str(model_dir)},
        "server": {"host": "127.0.0.1", "api_keys": [{"key": KEY, "instance": "default"}]},
        # Interval 0: every status after the connect must come from a camera change.
        "mqtt": {
            "enabled": True,
            "port": broker.port,
            "reconnect_min_s": 0.2,
            "status_interval_s": 0,
        },
        "cameras": [{**camera, "enabled": False}],
    }
    cfg_path = tmp_path / "edge.yaml"
    cfg_path.write_text(yaml.safe_dump(config))
    port = free_port()
    log = tmp_path / "serve.log"
    sub = Subscriber(broker.port, [f"{BASE}/#"]).connect()
    proc = serve_process(cfg_path, port, log)
    try:
        wait(lambda: ready(port) or proc.poll() is not None, 120, "/readyz")
        assert proc.poll() is None, log.read_text()

        # The retained status says online (a late subscriber gets it from the broker).
        late = Subscriber(broker.port, [f"{BASE}/status"]).connect()
        _t, status, _p, retained = late.wait_for(lambda t, b: b["state"] == "online", 30)
        late.close()
        assert retained and status["deviceId"] == DEVICE

        # Enrol over REST: the entity reaches MQTT as events/entity (no vector in it).
        image = base64.b64encode((faces / enrol_photo).read_bytes()).decode()
        code, entity = call(
            port, "POST", "/api/v1/entities/faces",
            {"model": "JCV_FACE_K25000", "image": {"data": image}, "key": "guido"},
        )  # fmt: skip
        assert code == 201, entity
        _t, ev, _p, _r = sub.wait_for(lambda t, b: t == f"{BASE}/events/entity", 30)
        assert ev["action"] == "created" and ev["entity"]["uuid"] == entity["uuid"]
        assert ev["entity"]["key"] == "guido" and "vector" not in json.dumps(ev)

        # Enable the camera: the config file changes, `reload` starts it, the video plays.
        config["cameras"] = [camera]
        cfg_path.write_text(yaml.safe_dump(config))
        sub.publish(f"{BASE}/cmd/reload", b"{}")
        _t, body, _p, _r = sub.wait_for(lambda t, b: t.endswith("reload/response"), 30)
        assert body["ok"] and body["result"]["started"] == ["door"], body
        _t, rec, _p, _r = sub.wait_for(lambda t, b: t == f"{BASE}/events/recognition", 60)
        assert rec["camera"] == "door" and rec["decision"] == "known", rec
        assert rec["match"]["uuid"] == entity["uuid"] and rec["match"]["key"] == "guido"

        # /metrics of the same server counts what this camera and the bridge did: the whole
        # file read, one latency sample per track, one decision per recognition message.
        def scrape() -> str:
            code, text = call(port, "GET", "/metrics")
            assert code == 200
            return str(text)

        def counted() -> bool:
            text = scrape()
            got = [b for t, b, _p, _r in sub.history if t == f"{BASE}/events/recognition"]
            tracks = {b["trackId"] for b in got}
            known = sum(1 for b in got if b["decision"] == "known")
            return (
                sample(text, "edge_camera_frames_read_total", camera="door") == frames
                and sample(text, "edge_camera_decision_latency_seconds_count", camera="door")
                == len(tracks)
                and sample(text, "edge_camera_decisions_total", camera="door", decision="known")
                == known
                and sample(text, "edge_mqtt_events_published_total", kind="recognition") == len(got)
            )

        wait(counted, 30, "camera series in /metrics to match the MQTT messages")
        text = scrape()
        assert (sample(text, "edge_camera_frames_processed_total", camera="door") or 0) > 0
        assert sample(text, "edge_camera_frames_dropped_total", camera="door") is None  # lock-step
        assert sample(text, "edge_mqtt_events_published_total", kind="entity", camera="") == 1

        # The file's end is a camera state change: the retained status follows it.
        def door(body: dict[str, Any]) -> dict[str, Any]:
            return next((c for c in body["cameras"] if c["name"] == "door"), {})

        _t, st, _p, _r = sub.wait_for(
            lambda t, b: t == f"{BASE}/status" and door(b).get("state") == "ended", 30
        )
        assert st["state"] == "online" and door(st)["framesRead"] == frames

        # SIGTERM: clean exit, and the retained status turns offline.
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, log.read_text()
        _t, off, _p, _r = sub.wait_for(
            lambda t, b: t == f"{BASE}/status" and b["state"] == "offline", 10
        )
        assert off["reason"] == "shutdown" and door(off)["framesRead"] == frames
        late = Subscriber(broker.port, [f"{BASE}/status"]).connect()
        _t, status, _p, retained = late.wait_for(lambda t, b: True, 10)
        late.close()
        assert retained and status["state"] == "offline"
        assert "Traceback" not in log.read_text()
    finally:
        sub.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
