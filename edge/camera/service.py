"""Composition of the background services: the MQTT bridge and the configured cameras.

The server enters `edge_services(engine)` once the engine (models and store, built by
`edge.engine`) is open; cameras do their image work through `edge.recognition` like REST;
leaving it stops cameras first (no new events), then flushes and closes the bridge, whose
final retained status still lists the stopped cameras with their last counters.
The bridge re-publishes the retained status whenever a camera starts, stops or changes
state, and every `mqtt.status_interval_s`, so it never shows the counters of the start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field

from edge.camera.events import RecognitionEvent
from edge.camera.payload import recognition_payload
from edge.camera.sources import Capture, parse_source
from edge.camera.worker import CameraWorker
from edge.config import CameraConfig, ConfigError, Settings, load_settings
from edge.engine import Engine
from edge.errors import EdgeError
from edge.mqtt.bridge import MqttBridge
from edge.mqtt.commands import CommandRequest
from edge.mqtt.schemas import entity_payload
from edge.recognition import Recognition
from edge.store.entities import Change
from edge.sync.service import SyncService

log = logging.getLogger(__name__)


class EnrollRequest(CommandRequest):
    camera: str | None = Field(None, description="camera name; optional with one camera")
    key: str = Field(max_length=256)
    collection: str = Field("", max_length=256)
    ttl: int = -1
    timeoutS: float = Field(5.0, gt=0, le=60)


class ReloadRequest(CommandRequest):
    pass


@dataclass
class CameraRunner:
    cfg: CameraConfig
    capture: Capture
    worker: CameraWorker

    def stop(self) -> None:
        self.capture.stop()
        self.worker.stop()


def start_camera(
    cfg: CameraConfig,
    recognition: Recognition,
    sink: Callable[[RecognitionEvent], None],
    *,
    device_id: str,
    on_state: Callable[[], None] | None = None,
) -> CameraRunner:
    spec = parse_source(cfg.source)
    realtime = cfg.realtime if cfg.realtime is not None else True
    capture = Capture(spec, realtime=realtime, name=cfg.name, on_state=on_state).start()
    worker = CameraWorker(cfg, capture, recognition, sink, device_id=device_id).start()
    return CameraRunner(cfg, capture, worker)


@dataclass
class EdgeServices:
    """The cameras and the MQTT bridge of one process, reachable by REST handlers through
    `edge.api.state.DEVICES` and by MQTT commands."""

    settings: Settings
    recognition: Recognition
    bridge: MqttBridge | None
    config_path: Path | None = None
    cameras: dict[str, CameraRunner] = field(default_factory=dict)
    listeners: list[Callable[[RecognitionEvent], None]] = field(default_factory=list)
    sync: SyncService | None = None  # fleet sync, whose state the MQTT status carries
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # Events -------------------------------------------------------------------------------
    def emit(self, event: RecognitionEvent) -> None:
        if self.bridge is not None:
            self.bridge.publish_event("recognition", recognition_payload(event))
        for fn in list(self.listeners):
            try:
                fn(event)
            except Exception:
                log.exception("recognition listener failed")

    def on_entity_change(self, change: Change) -> None:
        if self.bridge is not None:
            self.bridge.publish_event("entity", entity_payload(change, self.settings.device_id))

    # Cameras ------------------------------------------------------------------------------
    def _status_changed(self) -> None:
        """Ask the bridge for a fresh retained status; only raises a flag there."""
        if self.bridge is not None:
            self.bridge.publish_status()

    def start_cameras(self, configs: list[CameraConfig]) -> None:
        started = False
        for cfg in configs:
            if cfg.enabled and cfg.name not in self.cameras:
                self.cameras[cfg.name] = start_camera(
                    cfg,
                    self.recognition,
                    self.emit,
                    device_id=self.settings.device_id,
                    on_state=self._status_changed,
                )
                started = True
        if self.bridge is not None:
            self.bridge.set_cameras(sorted(self.cameras))
        if started:
            self._status_changed()

    def stop_cameras(self, names: list[str] | None = None, *, forget: bool = True) -> None:
        """Stop cameras; `forget=False` keeps them listed (state `stopped`) for a final
        status at shutdown."""
        stopped = False
        for name in list(names if names is not None else self.cameras):
            runner = self.cameras.pop(name, None) if forget else self.cameras.get(name)
            if runner is not None:
                runner.stop()
                stopped = True
        if stopped:
            self._status_changed()

    def status(self) -> dict[str, Any]:
        # A copy: reload may start or stop cameras while the bridge's thread reads this.
        out: dict[str, Any] = {"cameras": [r.worker.stats() for r in list(self.cameras.values())]}
        if self.sync is not None:
            out["sync"] = self.sync.mqtt_state()
        return out

    # Commands -----------------------------------------------------------------------------
    def enroll(self, req: EnrollRequest) -> dict[str, Any]:
        if req.ttl != -1 and req.ttl < 1:
            raise EdgeError(112, "ttl must be -1 or >= 1")
        runner: CameraRunner | None
        if req.camera is None:
            if len(self.cameras) != 1:
                raise EdgeError(110, "camera is required when the device has several cameras")
            runner = next(iter(self.cameras.values()))
        else:
            runner = self.cameras.get(req.camera)
        if runner is None:
            raise EdgeError(113, f"camera {req.camera!r} does not exist")
        entity = runner.worker.enroll_current(
            key=req.key, collection=req.collection, ttl=req.ttl, timeout_s=req.timeoutS
        )
        return {
            "camera": runner.cfg.name,
            "entity": {
                "uuid": entity.uuid,
                "model": entity.model_name,
                "collection": entity.collection,
                "key": entity.key,
            },
        }

    def reload(self, _req: ReloadRequest) -> dict[str, Any]:
        """Re-read the config file's cameras; restart only cameras whose config changed."""
        try:
            fresh = load_settings(self.config_path) if self.config_path else None
        except ConfigError as e:
            raise EdgeError(112, f"config: {e}") from None
        wanted = {c.name: c for c in (fresh.cameras if fresh else self.settings.cameras)}
        with self._lock:
            stopped = [n for n, r in self.cameras.items() if n not in wanted or wanted[n] != r.cfg]
            self.stop_cameras(stopped)
            before = set(self.cameras)
            self.start_cameras(list(wanted.values()))
            started = sorted(set(self.cameras) - before)
            if fresh is not None:
                self.settings.cameras = list(wanted.values())
        if self.bridge is not None:
            self.bridge.publish_status()
        return {"cameras": sorted(self.cameras), "started": started, "stopped": sorted(stopped)}


@contextlib.asynccontextmanager
async def edge_services(
    engine: Engine, *, config_path: Path | None = None, sync: SyncService | None = None
) -> AsyncIterator[EdgeServices]:
    """Start the MQTT bridge (if enabled) and the cameras `engine.settings` configure, over
    the engine's models and store; stop them on exit (the engine stays open: its owner
    closes it). With fleet `sync` (started) the MQTT status carries its state, and with
    `sync.doorbell_topic` a hub publishes its feed head there (retained) while a box
    watches it to pull at once."""
    settings = engine.settings
    store = engine.store
    services = EdgeServices(settings, Recognition(engine), None, config_path=config_path, sync=sync)
    if settings.mqtt.enabled:
        bridge = MqttBridge(settings, status_extra=services.status)
        bridge.register_command("enroll", EnrollRequest, services.enroll)
        bridge.register_command("reload", ReloadRequest, services.reload)
        bridge.set_cameras([c.name for c in settings.cameras if c.enabled])
        services.bridge = bridge
        store.add_listener(services.on_entity_change)
        doorbell = settings.sync.doorbell_topic
        if sync is not None and doorbell:
            if sync.is_hub:
                sync.publish_head(lambda doc: bridge.publish_retained(doorbell, doc))
            else:
                bridge.watch(doorbell, sync.ring)
        bridge.start()
    services.start_cameras(settings.cameras)
    try:
        yield services
    finally:
        loop = asyncio.get_running_loop()
        # Kept listed until the bridge has published its final status ("stopped", counters).
        await loop.run_in_executor(None, lambda: services.stop_cameras(forget=False))
        if services.bridge is not None:
            bridge, services.bridge = services.bridge, None  # store listener goes quiet
            await loop.run_in_executor(None, bridge.stop)
        services.cameras.clear()
