"""Camera and bridge counters in the Prometheus registry after a real video run."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

from prom_text import sample

from edge.camera.service import edge_services
from edge.engine import Engine
from edge.metrics import REGISTRY
from edge.store.entities import EntityStore
from tests.support.broker import Broker, Subscriber


async def test_camera_and_bridge_series_match_the_run(
    open_engine: Callable[..., Engine],
    broker: Broker,
    enroll_known: Callable[[EntityStore], dict[str, str]],
    people_video: tuple[Path, list[tuple[str, int]]],
) -> None:
    video, starts = people_video
    cam = f"metrics-{uuid.uuid4().hex[:6]}"  # the registry is process-wide: a fresh label
    mqtt = {"enabled": True, "port": broker.port, "reconnect_min_s": 0.2, "reconnect_max_s": 1}
    engine = open_engine(
        mqtt=mqtt,
        cameras=[{"name": cam, "source": str(video), "realtime": False, "track_timeout_s": 0.4}],
    )
    before = REGISTRY.render()
    sub = Subscriber(broker.port, ["edge-face/dev-1/events/recognition"]).connect()
    enroll_known(engine.store)
    async with edge_services(engine) as services:
        runner = services.cameras[cam]
        got = sub.collect("edge-face/dev-1/events/recognition", len(starts), timeout=120)
        assert runner.worker.finished.wait(60)
        stats = runner.worker.stats()
        assert services.bridge is not None and services.bridge.flush(10)
    sub.close()
    text = REGISTRY.render()

    def delta(name: str, **labels: str) -> float:
        return (sample(text, name, **labels) or 0.0) - (sample(before, name, **labels) or 0.0)

    assert sample(before, "edge_camera_frames_read_total", camera=cam) is None
    assert delta("edge_camera_frames_read_total", camera=cam) == stats["framesRead"] > 0
    assert delta("edge_camera_frames_dropped_total", camera=cam) == stats["framesDropped"]
    assert delta("edge_camera_frames_processed_total", camera=cam) == stats["framesProcessed"]
    assert delta("edge_camera_frame_seconds_count", camera=cam) == stats["framesProcessed"]
    known = sum(1 for e in got if e["decision"] == "known")
    assert delta("edge_camera_decisions_total", camera=cam, decision="known") == known > 0
    assert delta("edge_camera_decisions_total", camera=cam, decision="unknown") == len(got) - known
    assert delta("edge_camera_decision_latency_seconds_count", camera=cam) == len(got)
    lat = delta("edge_camera_decision_latency_seconds_sum", camera=cam)
    assert abs(lat - sum(e["latencyMs"] for e in got) / 1000) < 0.01 * len(got)
    assert delta("edge_camera_reconnects_total", camera=cam) == 0  # a file never reconnects
    published = delta("edge_mqtt_events_published_total", kind="recognition", camera=cam)
    assert published == len(got) == stats["events"]
    assert delta("edge_mqtt_messages_delivered_total") >= len(got)
