"""The bridge against a real mosquitto: status + last will, buffering, commands."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge.config import Settings
from edge.mqtt.bridge import MqttBridge
from tests.support.broker import Broker, Subscriber, V311OnlyFront
from tests.support.paths import REPO_ROOT

STATUS = "edge-face/dev-1/status"
EVENTS = "edge-face/dev-1/events/recognition"


def test_status_is_retained_online_then_offline_on_clean_stop(
    broker: Broker, mqtt_settings: Callable[..., Settings]
) -> None:
    bridge = MqttBridge(mqtt_settings())
    bridge.start()
    assert bridge.wait_connected(10)
    bridge.flush(5)
    sub = Subscriber(broker.port, [STATUS]).connect()
    _t, body, _p, retained = sub.wait_for(lambda t, b: t == STATUS)
    assert retained and body["state"] == "online" and body["deviceId"] == "dev-1"
    assert body["schema"] == "edge-face.status/1"
    bridge.stop()
    _t, body, _p, _r = sub.wait_for(lambda t, b: t == STATUS and b["state"] == "offline")
    assert body["reason"] == "shutdown"
    sub.close()


def test_last_will_marks_device_offline_when_process_is_killed(
    broker: Broker, tmp_path: Path
) -> None:
    script = textwrap.dedent(
        f"""
        import sys, time
        from edge.config import load_settings
        from edge.mqtt.bridge import MqttBridge
        s = load_settings(None, data_dir={str(tmp_path / "d")!r}, device_id="dev-1",
                          mqtt={{"enabled": True, "port": {broker.port}}})
        b = MqttBridge(s)
        b.start()
        assert b.wait_connected(10)
        b.flush(5)
        print("ready", flush=True)
        time.sleep(60)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, env=env, text=True
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        watcher = Subscriber(broker.port, [STATUS]).connect()
        watcher.wait_for(lambda t, b: b["state"] == "online")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        _t, body, _p, _r = watcher.wait_for(lambda t, b: b["state"] == "offline")
        assert body["reason"] == "connection lost"
        watcher.close()
        # A subscriber arriving later still sees the retained offline state.
        late = Subscriber(broker.port, [STATUS]).connect()
        _t, body, _p, retained = late.wait_for(lambda t, b: True)
        assert retained and body["state"] == "offline"
        late.close()
    finally:
        if proc.poll() is None:
            proc.kill()


def test_events_queued_during_broker_restart_are_delivered_in_order(
    broker: Broker, mqtt_settings: Callable[..., Settings]
) -> None:
    sub = Subscriber(broker.port, [EVENTS], client_id="keeper", persistent=True).connect()
    bridge = MqttBridge(mqtt_settings())
    bridge.start()
    assert bridge.wait_connected(10)
    bridge.publish_event("recognition", {"n": 0})
    assert sub.collect(EVENTS, 1)[0] == {"n": 0}

    broker.stop()
    for n in range(1, 6):
        bridge.publish_event("recognition", {"n": n})
    stats = bridge.queue_stats()
    assert stats.queued + stats.inFlight == 5 and stats.dropped == 0
    broker.start()

    got = sub.collect(EVENTS, 5, timeout=20)
    assert [g["n"] for g in got] == [1, 2, 3, 4, 5]
    assert bridge.flush(10)
    assert bridge.queue_stats().dropped == 0
    bridge.stop()
    sub.close()


def test_queue_is_bounded_and_drops_the_oldest(
    broker: Broker, mqtt_settings: Callable[..., Settings]
) -> None:
    sub = Subscriber(broker.port, [EVENTS], client_id="keeper", persistent=True).connect()
    broker.stop()
    bridge = MqttBridge(mqtt_settings(queue_limit=3))
    bridge.start()  # broker is down: the first connection attempt fails and is retried
    for n in range(5):
        bridge.publish_event("recognition", {"n": n})
    stats = bridge.queue_stats()
    assert (stats.queued, stats.dropped) == (3, 2)
    broker.start()
    got = sub.collect(EVENTS, 3, timeout=20)
    assert [g["n"] for g in got] == [2, 3, 4]
    bridge.stop()
    sub.close()


def test_command_response_honours_response_topic_and_correlation_data(
    broker: Broker, mqtt_settings: Callable[..., Settings]
) -> None:
    bridge = MqttBridge(mqtt_settings())
    bridge.start()
    assert bridge.wait_connected(10)
    reply_to = f"client/{uuid.uuid4().hex}/reply"
    sub = Subscriber(broker.port, [reply_to, "edge-face/dev-1/cmd/+/response"]).connect()

    props = Properties(PacketTypes.PUBLISH)
    props.ResponseTopic = reply_to
    props.CorrelationData = b"\x00corr-42"
    sub.publish("edge-face/dev-1/cmd/status", b'{"id": "r1"}', props)
    topic, body, rprops, _r = sub.wait_for(lambda t, b: t == reply_to)
    assert body["ok"] is True and body["id"] == "r1" and body["command"] == "status"
    assert body["result"]["state"] == "online"
    assert rprops.CorrelationData == b"\x00corr-42"

    # Without a response topic the reply goes to cmd/<name>/response.
    sub.publish("edge-face/dev-1/cmd/status", b"{}")
    topic, body, _p, _r = sub.wait_for(lambda t, b: t.endswith("/response"))
    assert topic == "edge-face/dev-1/cmd/status/response" and body["ok"] is True
    bridge.stop()
    sub.close()


def test_malformed_commands_get_contract_errors(
    broker: Broker, mqtt_settings: Callable[..., Settings]
) -> None:
    bridge = MqttBridge(mqtt_settings())
    bridge.start()
    assert bridge.wait_connected(10)
    sub = Subscriber(broker.port, ["edge-face/dev-1/cmd/+/response"]).connect()
    cases = [
        ("status", b"not json", 111),
        ("status", b"[1, 2]", 111),
        ("status", b'{"bogus": 1}', 112),
        ("status", b'{"id": 5}', 111),
        ("selfdestruct", b"{}", 404),
    ]
    for name, payload, code in cases:
        sub.publish(f"edge-face/dev-1/cmd/{name}", payload)
        topic, body, _p, _r = sub.wait_for(lambda t, b: t.endswith("/response"))
        assert topic == f"edge-face/dev-1/cmd/{name}/response"
        assert body["ok"] is False and body["error"]["code"] == code, (payload, body)
        assert body["result"] is None
    assert bridge.connected  # still serving after the bad input
    bridge.stop()
    sub.close()


def test_home_assistant_discovery_is_retained(
    broker: Broker, mqtt_settings: Callable[..., Settings]
) -> None:
    bridge = MqttBridge(mqtt_settings(homeassistant_discovery=True))
    bridge.set_cameras(["door"])
    bridge.start()
    assert bridge.wait_connected(10)
    bridge.flush(5)
    sub = Subscriber(broker.port, ["homeassistant/#"]).connect()
    seen = {}
    while len(seen) < 2:
        topic, body, _p, retained = sub.wait_for(lambda t, b: True)
        assert retained
        seen[topic] = body
    online = seen["homeassistant/binary_sensor/edge_face_dev-1/online/config"]
    assert online["state_topic"] == STATUS
    person = seen["homeassistant/sensor/edge_face_dev-1/door_person/config"]
    assert person["state_topic"] == EVENTS
    bridge.stop()
    sub.close()


def test_mqtt_v311_clients_get_the_request_id_echoed(
    broker: Broker, mqtt_settings: Callable[..., Settings]
) -> None:
    bridge = MqttBridge(mqtt_settings(protocol="v311"))
    bridge.start()
    assert bridge.wait_connected(10)
    sub = Subscriber(broker.port, ["edge-face/dev-1/cmd/+/response", STATUS]).connect()
    _t, status, _p, _r = sub.wait_for(lambda t, b: t == STATUS)
    assert status["protocol"] == "v311"
    sub.publish("edge-face/dev-1/cmd/status", b'{"id": "abc"}')
    _t, body, _p, _r = sub.wait_for(lambda t, b: t.endswith("/response"))
    assert body["ok"] is True and body["id"] == "abc"
    bridge.stop()
    sub.close()


def test_falls_back_to_v311_when_the_broker_refuses_v5(
    broker: Broker, mqtt_settings: Callable[..., Settings]
) -> None:
    front = V311OnlyFront(broker.port)
    bridge = MqttBridge(mqtt_settings(port=front.port))
    bridge.start()
    try:
        assert bridge.wait_connected(15)
        assert front.levels[:2] == [5, 4]  # tried v5 first, then v3.1.1
        sub = Subscriber(broker.port, [STATUS, EVENTS]).connect()
        _t, body, _p, _r = sub.wait_for(lambda t, b: t == STATUS)
        assert body["state"] == "online" and body["protocol"] == "v311"
        bridge.publish_event("recognition", {"n": 1})
        assert sub.collect(EVENTS, 1)[0] == {"n": 1}
        sub.close()
    finally:
        bridge.stop()
        front.close()


class Counter:
    """A status_extra callback whose camera counter grows with every status built."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self) -> dict[str, Any]:
        self.n += 1
        return {"cameras": [{"name": "door", "framesRead": self.n}]}


def test_status_is_republished_on_its_interval_with_fresh_counters(
    broker: Broker, mqtt_settings: Callable[..., Settings]
) -> None:
    sub = Subscriber(broker.port, [STATUS]).connect()
    bridge = MqttBridge(mqtt_settings(status_interval_s=0.2), status_extra=Counter())
    bridge.start()
    try:
        bodies = sub.collect(STATUS, 4, timeout=20)
        assert all(b["state"] == "online" for b in bodies)
        frames = [b["cameras"][0]["framesRead"] for b in bodies]
        assert frames == sorted(frames) and len(set(frames)) == 4, frames
        # The retained copy is a recent one, not the one of the connect.
        late = Subscriber(broker.port, [STATUS]).connect()
        _t, body, _p, retained = late.wait_for(lambda t, b: True)
        assert retained and body["cameras"][0]["framesRead"] > frames[0]
        late.close()
    finally:
        bridge.stop()
        sub.close()


def test_interval_zero_publishes_only_on_request_and_final_status_lists_cameras(
    broker: Broker, mqtt_settings: Callable[..., Settings]
) -> None:
    sub = Subscriber(broker.port, [STATUS]).connect()
    bridge = MqttBridge(mqtt_settings(status_interval_s=0), status_extra=Counter())
    bridge.start()
    first = sub.collect(STATUS, 1, timeout=20)[0]
    for _ in range(3):  # requests coalesce: one fresh status, not three queued copies
        bridge.publish_status()
    second = sub.collect(STATUS, 1)[0]
    assert second["cameras"][0]["framesRead"] > first["cameras"][0]["framesRead"]
    assert bridge.flush(5)
    time.sleep(1.0)  # nothing periodic may follow with interval 0
    assert len([t for t, *_ in sub.history if t == STATUS]) in (2, 3)  # connect + requests
    bridge.stop()
    _t, body, _p, _r = sub.wait_for(lambda t, b: t == STATUS and b["state"] == "offline")
    assert body["reason"] == "shutdown" and body["cameras"][0]["name"] == "door"
    assert body["queue"] is not None
    sub.close()


def test_status_requests_while_offline_never_displace_queued_events(
    broker: Broker, mqtt_settings: Callable[..., Settings]
) -> None:
    sub = Subscriber(broker.port, [EVENTS], client_id="keeper", persistent=True).connect()
    broker.stop()
    bridge = MqttBridge(mqtt_settings(queue_limit=2))
    bridge.start()  # broker down: retried with backoff
    for n in range(2):
        bridge.publish_event("recognition", {"n": n})
    for _ in range(5):
        bridge.publish_status()  # e.g. a camera reconnecting while the broker is away
    assert bridge.queue_stats().dropped == 0
    broker.start()
    got = sub.collect(EVENTS, 2, timeout=20)
    assert [g["n"] for g in got] == [0, 1]
    bridge.stop()
    sub.close()
