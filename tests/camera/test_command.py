"""`edge-face camera` as a real process: JSON lines, enrolment, last will on SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import yaml
from camera_helpers import KNOWN, Vision
from camera_video import background, place
from mjpeg_stream import MjpegServer
from mosquitto_broker import Broker, Subscriber

from edge.config import REPO_ROOT
from edge.store.entities import EntityStore
from tests.conftest import read_bgr


def write_config(vision: Vision, tmp_path: Path, broker: Broker | None) -> Path:
    cfg = {
        "data_dir": str(tmp_path / "data"),
        "device_id": "box",
        "models": {"dir": str(vision.settings.model_dir)},
        "mqtt": {"enabled": broker is not None, "port": broker.port if broker else 1883},
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
    with EntityStore(settings.store_path, pack_fingerprint=vision.registry.fingerprint) as store:
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
