"""edge_services end to end: cameras -> MQTT events, entity events, MQTT commands."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import yaml
from camera_helpers import STRANGERS
from camera_video import background, place
from mjpeg_stream import MjpegServer
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge.camera.service import edge_services
from edge.engine import Engine
from edge.store.entities import EntityStore
from tests.support.broker import Broker, Subscriber
from tests.support.images import read_bgr

BASE = "edge-face/dev-1"


def mqtt_cfg(broker: Broker) -> dict[str, object]:
    return {"enabled": True, "port": broker.port, "reconnect_min_s": 0.2, "reconnect_max_s": 1}


async def test_camera_events_and_entity_events_reach_mqtt(
    open_engine: Callable[..., Engine],
    broker: Broker,
    enroll_known: Callable[[EntityStore], dict[str, str]],
    people_video: tuple[Path, list[tuple[str, int]]],
) -> None:
    video, starts = people_video
    engine = open_engine(
        mqtt=mqtt_cfg(broker),
        cameras=[{"name": "door", "source": str(video), "realtime": False, "track_timeout_s": 0.4}],
    )
    settings, store = engine.settings, engine.store
    uuids = enroll_known(store)
    sub = Subscriber(broker.port, [f"{BASE}/#"]).connect()
    async with edge_services(engine) as services:
        assert services.bridge is not None and services.bridge.wait_connected(10)
        runner = services.cameras["door"]
        # An entity created and deleted the way the REST API does it: straight in the store.
        e = store.create(
            instance="default",
            model=settings.names.face,
            model_name="JCV_FACE_K25000",
            collection="visitors",
            key="temp",
            metadata=[],
            ttl=60,
            vector=store.get("default", uuids["guido"], with_vector=True).vector,  # type: ignore[union-attr]
        )
        store.delete("default", e.uuid)
        recognitions = sub.collect(f"{BASE}/events/recognition", len(starts), timeout=120)
        assert runner.worker.finished.wait(60)
    sub.close()
    entity_events = [b for t, b, _p, _r in sub.history if t == f"{BASE}/events/entity"]

    keys = [r["match"]["key"] if r["match"] else None for r in recognitions]
    assert keys == ["guido", None, "paul", None, "matt", None]
    assert [r["liveness"]["verdict"] for r in recognitions][3] == "spoof"
    assert all(r["schema"] == "edge-face.recognition/1" for r in recognitions)
    assert [(x["action"], x["entity"]["uuid"]) for x in entity_events] == [
        ("created", e.uuid),
        ("deleted", e.uuid),
    ]
    created = entity_events[0]
    assert created["schema"] == "edge-face.entity/1"
    assert created["entity"]["key"] == "temp" and created["entity"]["model"] == "JCV_FACE_K25000"
    assert "vector" not in json.dumps(created)


async def test_enroll_command_on_an_mjpeg_camera(
    open_engine: Callable[..., Engine], broker: Broker, tmp_path: Path, testdata: Path
) -> None:
    person, photo = STRANGERS["kate"]
    frame = place(background(), read_bgr(testdata / "faces_by_identity" / person / photo), 440)
    server = MjpegServer([frame], fps=10).start()
    config = tmp_path / "config.yaml"
    camera = {"name": "gate", "source": server.url, "detect_fps": 8}
    config.write_text(yaml.safe_dump({"cameras": [camera]}))
    engine = open_engine(mqtt=mqtt_cfg(broker), cameras=[camera])
    store = engine.store
    sub = Subscriber(
        broker.port, [f"{BASE}/events/recognition", f"{BASE}/cmd/+/response", "reply/#"]
    )
    sub.connect()
    try:
        async with edge_services(engine, config_path=config) as services:
            _t, first, _p, _r = sub.wait_for(lambda t, b: t.endswith("recognition"), timeout=60)
            assert first["decision"] == "unknown" and first["camera"] == "gate"

            # Malformed enrol commands: an error each, nothing written.
            bad = [
                (b'{"key": 5}', 111),
                (b"{}", 110),
                (b'{"key": "kate", "camera": "nope"}', 113),
                (b'{"key": "kate", "ttl": 0}', 112),
                (b'{"key": "kate", "extra": true}', 112),
                (b"{oops", 111),
            ]
            for payload, code in bad:
                sub.publish(f"{BASE}/cmd/enroll", payload)
                _t, body, _p, _r = sub.wait_for(lambda t, b: t.endswith("enroll/response"))
                assert body["ok"] is False and body["error"]["code"] == code, (payload, body)
            assert store.count() == 0

            props = Properties(PacketTypes.PUBLISH)
            props.ResponseTopic = "reply/enroll"
            props.CorrelationData = b"enrol-1"
            sub.publish(f"{BASE}/cmd/enroll", b'{"key": "kate", "collection": "guests"}', props)
            _t, body, rprops, _r = sub.wait_for(lambda t, b: t == "reply/enroll", timeout=30)
            assert body["ok"] is True, body
            assert rprops.CorrelationData == b"enrol-1"
            entity = body["result"]["entity"]
            assert entity["key"] == "kate" and entity["collection"] == "guests"
            assert store.count() == 1 and store.get("default", entity["uuid"]) is not None

            # The same track, now known: the changed decision is emitted once more.
            _t, again, _p, _r = sub.wait_for(
                lambda t, b: t.endswith("recognition") and b["decision"] == "known", timeout=30
            )
            assert again["trackId"] == first["trackId"] and again["revision"] == 2
            assert again["match"]["uuid"] == entity["uuid"]

            # reload: the config file no longer lists the camera -> it is stopped.
            config.write_text(yaml.safe_dump({"cameras": []}))
            sub.publish(f"{BASE}/cmd/reload", b"{}")
            _t, body, _p, _r = sub.wait_for(lambda t, b: t.endswith("reload/response"))
            assert body["ok"] and body["result"]["stopped"] == ["gate"]
            assert services.cameras == {}
    finally:
        sub.close()
        server.stop()
