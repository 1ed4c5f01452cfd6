"""`edge-face camera` as a real process: JSON lines, enrolment, a retained status that
follows the camera, a final status on SIGTERM and the last will on SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from camera_helpers import KNOWN, Vision
from camera_video import background, place
from mjpeg_stream import MjpegServer

from edge.engine import Engine
from tests.support.broker import Broker, Subscriber
from tests.support.images import read_bgr
from tests.support.paths import REPO_ROOT


def write_config(vision: Vision, tmp_path: Path, broker: Broker | None, **mqtt: Any) -> Path:
    cfg = {
        "data_dir": str(tmp_path / "data"),
        "device_id": "box",
        "models": {"dir": str(vision.settings.model_dir)},
        "mqtt": {"enabled": broker is not None, "port": broker.port if broker else 1883, **mqtt},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def camera_cmd(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "edge.cli", "camera", "-c", str(config), *args]


ENV = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}


def test_enroll_key_enrols_the_first_person_and_exits(
    vision: Vision,
    tmp_path: Path,
    testdata: Path,
    people_video: tuple[Path, list[tuple[str, int]]],
) -> None:
    config = write_config(vision, tmp_path, None)
    video, _ = people_video
    out = subprocess.run(
        camera_cmd(config, "--source", str(video), "--realtime", "no", "--enroll-key", "first"),
        capture_output=True,
        text=True,
        env=ENV,
        timeout=180,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    lines = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    enrolled = next(x["enrolled"] for x in lines if "enrolled" in x)
    assert enrolled["entity"]["key"] == "first" and enrolled["camera"] == "cam"
    settings = vision.settings.model_copy(update={"data_dir": tmp_path / "data"})
    with Engine.open(settings, models=vision.models) as engine:
        store = engine.store
        assert store.count() == 1
        e = store.get("default", enrolled["entity"]["uuid"], with_vector=True)
        assert e is not None and e.vector is not None
        # The first person of the video is Guido: his enrolment photo must match the entity.
        person, photo, _ = KNOWN["guido"]
        ref = vision.pipeline.analyze_largest(
            read_bgr(testdata / "faces_by_identity" / person / photo)
        )
        assert vision.pipeline.similarity(ref.embedding, e.vector) >= 0.9  # type: ignore[arg-type]


def test_killed_camera_process_leaves_a_retained_offline_status(
    vision: Vision, tmp_path: Path, broker: Broker, testdata: Path
) -> None:
    person, photo = "kate_winslet", "11.png"
    frame = place(background(), read_bgr(testdata / "faces_by_identity" / person / photo), 440)
    server = MjpegServer([frame], fps=10).start()
    config = write_config(vision, tmp_path, broker)
    status = "edge-face/box-gate/status"
    sub = Subscriber(broker.port, [status, "edge-face/box-gate/events/recognition"]).connect()
    proc = subprocess.Popen(
        camera_cmd(config, "--source", server.url, "--name", "gate"),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=ENV,
    )
    try:
        _t, body, _p, _r = sub.wait_for(lambda t, b: t == status and b["state"] == "online", 90)
        _t, event, _p, _r = sub.wait_for(lambda t, b: t.endswith("recognition"), 60)
        assert event["deviceId"] == "box-gate" and event["decision"] == "unknown"
        assert proc.stdout is not None
        printed = json.loads(proc.stdout.readline())  # the same event as a JSON line
        assert printed["eventId"] == event["eventId"]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        _t, body, _p, _r = sub.wait_for(lambda t, b: t == status and b["state"] == "offline", 30)
        assert body["reason"] == "connection lost"
    finally:
        if proc.poll() is None:
            proc.kill()
        sub.close()
        server.stop()
    late = Subscriber(broker.port, [status]).connect()
    _t, body, _p, retained = late.wait_for(lambda t, b: True)
    assert retained and body["state"] == "offline"
    late.close()


def test_retained_status_follows_a_running_camera_and_ends_stopped_on_sigterm(
    vision: Vision,
    tmp_path: Path,
    broker: Broker,
    people_video: tuple[Path, list[tuple[str, int]]],
) -> None:
    video, _ = people_video
    config = write_config(vision, tmp_path, broker, status_interval_s=0.5)
    status = "edge-face/box-cam/status"
    sub = Subscriber(broker.port, [status]).connect()
    # Paced at its own fps, the video plays for about 13 s: time for several statuses.
    proc = subprocess.Popen(
        camera_cmd(config, "--source", str(video), "--realtime", "yes"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=ENV,
    )

    def cam(body: dict[str, Any]) -> dict[str, Any] | None:
        return next((c for c in body.get("cameras", []) if c["name"] == "cam"), None)

    def reading(_t: str, body: Any) -> bool:
        c = cam(body)
        return body["state"] == "online" and c is not None and c["framesRead"] > 0

    try:
        _t, first, _p, _r = sub.wait_for(reading, 120)
        n0 = cam(first)["framesRead"]  # type: ignore[index]
        _t, later, _p, _r = sub.wait_for(
            lambda t, b: reading(t, b) and cam(b)["framesRead"] > n0,  # type: ignore[index]
            10,
        )
        assert cam(later)["source"] == "file"  # type: ignore[index]
        # A subscriber arriving now gets a retained status listing the running camera.
        late = Subscriber(broker.port, [status]).connect()
        _t, body, _p, retained = late.wait_for(lambda t, b: True)
        late.close()
        assert retained and body["state"] == "online" and cam(body) is not None
        assert cam(body)["framesRead"] >= n0  # type: ignore[index]
        assert proc.poll() is None, "the video ended before SIGTERM; the test needs it running"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        sub.close()
    late = Subscriber(broker.port, [status]).connect()
    _t, body, _p, retained = late.wait_for(lambda t, b: True)
    late.close()
    assert retained and body["state"] == "offline" and body["reason"] == "shutdown"
    final = cam(body)
    assert final is not None and final["state"] == "stopped", body
    assert final["framesRead"] >= cam(later)["framesRead"]  # type: ignore[index]
