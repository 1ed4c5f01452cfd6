"""The MQTT bridge: a retained status with a last will, buffered events, commands in.

Why a queue of our own in front of paho: paho keeps every publish made while offline in an
unbounded dict, so a long broker outage would grow memory without limit. Here events wait
in a bounded deque (oldest dropped and counted) and are handed to paho only while connected,
at most `inflight_window` unacknowledged at a time. Messages paho already holds are re-sent
by paho itself after a reconnect (QoS >= 1), so nothing handed over is lost either.

The retained status is not an event: it is never queued (a stale copy is worthless and must
not push events out of the bounded queue). A request only raises a flag, so callers such as
camera threads never wait; the pump thread builds the status fresh when it sends it, on
request (cameras started/stopped/changed state), every `status_interval_s`, and on connect.
"""

from __future__ import annotations

import contextlib
import json
import logging
import ssl
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge import __version__
from edge.config import Settings
from edge.mqtt.commands import CommandRequest, CommandRouter, Handler
from edge.mqtt.homeassistant import discovery_messages
from edge.mqtt.metrics import CONNECTS, DELIVERED, EVENTS_PUBLISHED, QUEUE_DROPPED
from edge.mqtt.schemas import DeviceState, QueueStats, StatusPayload, dump
from edge.mqtt.topics import Topics

log = logging.getLogger(__name__)

_Action = Literal["stop", "downgrade", "status", "event"]

# CONNACK reason codes meaning "this broker does not speak MQTT v5".
_UNSUPPORTED_PROTOCOL = {1, 132}


@dataclass
class _Outgoing:
    topic: str
    payload: bytes
    retain: bool = False


class MqttBridge:
    """One MQTT connection per process; thread-safe `publish_event` from any thread."""

    def __init__(
        self,
        settings: Settings,
        *,
        status_extra: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.settings = settings
        self.cfg = settings.mqtt
        self.topics = Topics(self.cfg.prefix, settings.device_id)
        self.router = CommandRouter()
        self._status_extra = status_extra
        self._cond = threading.Condition()
        self._queue: deque[_Outgoing] = deque()
        self._inflight = 0
        self._dropped = 0
        self._delivered = 0
        self._connected = False
        self._stopping = False
        self._ever_connected = threading.Event()
        self._protocol = self.cfg.protocol
        self._downgrade = False
        self._cameras: list[str] = []
        self._status_wanted = False  # a fresh status was requested (one pending at most)
        self._status_mids: set[int] = set()  # status publishes paho has not had acked yet
        self._last_status = time.monotonic()
        self._closing = False  # stop() began: no more `online` statuses
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="mqtt-cmd")
        self._watched: dict[str, Callable[[bytes], None]] = {}  # topic -> handler
        self._pump: threading.Thread | None = None
        self.client = self._make_client()
        self.register_command("status", CommandRequest, self._status_command)

    # Construction --------------------------------------------------------------------------
    @property
    def client_id(self) -> str:
        return self.cfg.client_id or f"edge-face-{self.settings.device_id}"

    def _status(
        self, state: DeviceState, reason: str | None = None, *, detail: bool = True
    ) -> StatusPayload:
        """`detail=False` (the last will) leaves out cameras and queue: they would be stale."""
        extra: dict[str, Any] = {}
        if detail and self._status_extra is not None:
            try:
                extra = self._status_extra()
            except Exception:  # a status without cameras beats a dead pump thread
                log.exception("building the camera part of the MQTT status failed")
        return StatusPayload(
            deviceId=self.settings.device_id,
            state=state,
            version=__version__,
            protocol=self._protocol,
            reason=reason,
            cameras=extra.get("cameras", []),
            sync=extra.get("sync"),
            queue=self.queue_stats() if detail else None,
        )

    def _make_client(self) -> mqtt.Client:
        v5 = self._protocol == "v5"
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
            clean_session=None if v5 else True,
        )
        will = self._status("offline", reason="connection lost", detail=False)
        client.will_set(self.topics.status, dump(will), qos=1, retain=True)
        if self.cfg.username:
            pw = self.cfg.password.get_secret_value() if self.cfg.password else None
            client.username_pw_set(self.cfg.username, pw)
        if self.cfg.tls:
            client.tls_set(
                ca_certs=str(self.cfg.ca_file) if self.cfg.ca_file else None,
                certfile=str(self.cfg.cert_file) if self.cfg.cert_file else None,
                keyfile=str(self.cfg.key_file) if self.cfg.key_file else None,
                cert_reqs=ssl.CERT_REQUIRED,
            )
            client.tls_insecure_set(self.cfg.tls_insecure)
        # Exponential backoff: min, 2*min, 4*min ... capped at max. paho annotates int but
        # sleeps a float, and sub-second delays matter here: hence the two ignores.
        client.reconnect_delay_set(
            min_delay=self.cfg.reconnect_min_s,  # type: ignore[arg-type]
            max_delay=self.cfg.reconnect_max_s,  # type: ignore[arg-type]
        )
        client.max_queued_messages_set(0)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        return client

    # Public API ---------------------------------------------------------------------------
    def register_command(self, name: str, request: type[CommandRequest], handler: Handler) -> None:
        """`handler(validated_request) -> result dict`; raise EdgeError for contract errors."""
        self.router.register(name, request, handler)

    def _status_command(self, _req: CommandRequest) -> dict[str, Any]:
        return self._status("online").model_dump(by_alias=True)

    def set_cameras(self, names: list[str]) -> None:
        self._cameras = list(names)

    def start(self) -> None:
        """Connect in the background; a broker that is down now is retried with backoff."""
        self._pump = threading.Thread(target=self._pump_loop, name="mqtt-pump", daemon=True)
        self._pump.start()
        self.client.connect_async(self.cfg.host, self.cfg.port, self.cfg.keepalive)
        self.client.loop_start()

    def wait_connected(self, timeout: float) -> bool:
        return self._ever_connected.wait(timeout)

    @property
    def connected(self) -> bool:
        return self._connected

    def publish_event(self, kind: str, payload: dict[str, Any] | bytes) -> None:
        """Queue an event for `events/<kind>`; never blocks, drops the oldest when full."""
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        camera = payload.get("camera") if isinstance(payload, dict) else None
        EVENTS_PUBLISHED.inc(kind=kind, camera=str(camera) if camera else "")
        self._enqueue(_Outgoing(self.topics.event(kind), data))

    def publish_retained(self, topic: str, payload: dict[str, Any]) -> None:
        """Queue a retained message for `topic` (a doorbell: the broker keeps the latest
        for late subscribers); never blocks, queued while the broker is away."""
        self._enqueue(_Outgoing(topic, json.dumps(payload).encode(), retain=True))

    def watch(self, topic: str, handler: Callable[[bytes], None]) -> None:
        """`handler(payload)` for each message on `topic` (retained ones included), on
        paho's thread: keep it quick. Subscribed on every (re)connect; call before start."""
        self._watched[topic] = handler

    def publish_status(self) -> None:
        """Ask for a fresh retained status soon; never blocks (safe from a camera thread).

        Requests coalesce, and while the broker is unreachable nothing is queued: the
        status sent on the next connect is built then, so it is current anyway.
        """
        with self._cond:
            self._status_wanted = True
            self._cond.notify_all()

    def queue_stats(self) -> QueueStats:
        with self._cond:
            return QueueStats(
                queued=len(self._queue),
                inFlight=self._inflight,
                dropped=self._dropped,
                delivered=self._delivered,
            )

    def flush(self, timeout: float) -> bool:
        """Wait until everything queued has been acknowledged by the broker."""
        with self._cond:
            return self._cond.wait_for(
                lambda: not self._queue and self._inflight == 0, timeout=timeout
            )

    def stop(self, timeout: float = 5.0) -> None:
        """Deliver what is queued (bounded wait), mark the device offline, disconnect.

        The final `offline` status still lists the cameras (stop them first: they then
        show `stopped` and their last counters) and the queue, so the retained message
        tells how the process ended, not only that it did.
        """
        with self._cond:
            self._closing = True  # an `online` status sent after this could outlive us
        if self._connected:
            self.flush(timeout)  # also waits for an `online` status already in flight
            info = self.client.publish(
                self.topics.status,
                dump(self._status("offline", reason="shutdown")),
                qos=1,
                retain=True,
            )
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(timeout)
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self.client.disconnect()
        self.client.loop_stop()
        if self._pump:
            self._pump.join(timeout)
        self._executor.shutdown(wait=False, cancel_futures=True)

    # Internals ----------------------------------------------------------------------------
    def _enqueue(self, item: _Outgoing) -> None:
        with self._cond:
            if len(self._queue) >= self.cfg.queue_limit:
                self._queue.popleft()
                self._dropped += 1
                QUEUE_DROPPED.inc()
            self._queue.append(item)
            self._cond.notify_all()

    def _next_action(self) -> _Action:
        """Under `_cond`: wait until there is something to do; "stop", "downgrade",
        "status" or "event". The periodic status is due `status_interval_s` after the
        last one, so a status sent on a change also postpones it."""
        window = self.cfg.inflight_window
        interval = self.cfg.status_interval_s
        while True:
            if self._stopping:
                return "stop"
            if self._downgrade:
                self._downgrade = False
                return "downgrade"
            now = time.monotonic()
            if interval > 0 and now >= self._last_status + interval:
                self._status_wanted = True
            if self._connected and self._status_wanted and not self._closing:
                self._status_wanted = False
                self._last_status = now
                self._inflight += 1  # now, so that a concurrent stop()'s flush waits for it
                return "status"
            if self._connected and self._queue and self._inflight < window:
                return "event"
            wait = None
            if interval > 0 and not self._status_wanted:
                wait = max(self._last_status + interval - now, 0.0)
            self._cond.wait(wait)

    def _send_status(self) -> None:
        """Build the status now (fresh counters) and hand it to paho; runs on the pump."""
        mid: int | None = None  # set while paho holds the message (sent or to re-send)
        try:
            body = dump(self._status("online"))
            info = self.client.publish(self.topics.status, body, qos=1, retain=True)
            if info.rc in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
                mid = info.mid
        except Exception:  # the pump must survive: events depend on it
            log.exception("publishing the MQTT status failed")
        with self._cond:
            if mid is not None:
                self._status_mids.add(mid)
            else:
                self._inflight -= 1
                self._cond.notify_all()

    def _pump_loop(self) -> None:
        while True:
            with self._cond:
                action = self._next_action()
                if action == "event":
                    item = self._queue.popleft()
                    self._inflight += 1
            if action == "stop":
                return
            if action == "downgrade":
                self._switch_to_v311()
                continue
            if action == "status":
                self._send_status()
                continue
            # Not under our lock: paho calls on_publish holding its own lock.
            try:
                info = self.client.publish(item.topic, item.payload, self.cfg.qos, item.retain)
                failed = info.rc not in (
                    MQTTErrorCode.MQTT_ERR_SUCCESS,
                    MQTTErrorCode.MQTT_ERR_NO_CONN,
                )
            except ValueError:
                log.exception("dropping unpublishable message on %s", item.topic)
                failed = True
            if failed:
                with self._cond:
                    self._inflight -= 1
                    self._dropped += 1
                    self._cond.notify_all()
                QUEUE_DROPPED.inc()

    def _switch_to_v311(self) -> None:
        log.warning("broker refused MQTT v5; falling back to v3.1.1")
        self.client.loop_stop()
        self._protocol = "v311"
        with self._cond:
            self._inflight = 0
            self._status_mids.clear()
        self.client = self._make_client()
        self.client.connect_async(self.cfg.host, self.cfg.port, self.cfg.keepalive)
        self.client.loop_start()

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason_code: Any,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            log.warning("MQTT broker refused the connection: %s", reason_code)
            if self._protocol == "v5" and reason_code.value in _UNSUPPORTED_PROTOCOL:
                with self._cond:
                    self._downgrade = True
                    self._cond.notify_all()
            return
        log.info("MQTT connected to %s:%s (%s)", self.cfg.host, self.cfg.port, self._protocol)
        client.subscribe(self.topics.command_filter, qos=self.cfg.qos)
        for topic in self._watched:
            client.subscribe(topic, qos=1)
        # Status and discovery go straight to paho, ahead of queued events; they count as
        # in flight so that `flush()` also waits for them.
        control = [(self.topics.status, dump(self._status("online")))]
        if self.cfg.homeassistant_discovery:
            control += discovery_messages(self.settings, self.topics, self._cameras)
        with self._cond:
            self._inflight += len(control)
            self._last_status = time.monotonic()
            # paho re-sends an unacknowledged older status after this callback returns,
            # which would become the retained one: then follow it with a fresh one.
            self._status_wanted = bool(self._status_mids)
            self._status_mids.clear()
        for topic, body in control:
            client.publish(topic, body, qos=1, retain=True)
        with self._cond:
            self._connected = True
            self._cond.notify_all()
        CONNECTS.inc()
        self._ever_connected.set()

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason_code: Any,
        properties: Properties | None,
    ) -> None:
        with self._cond:
            self._connected = False
            self._cond.notify_all()
        if not self._stopping:
            log.warning("MQTT connection lost (%s); retrying with backoff", reason_code)

    def _on_publish(
        self, client: mqtt.Client, userdata: Any, mid: int, reason_code: Any, properties: Any
    ) -> None:
        with self._cond:
            self._status_mids.discard(mid)
            if self._inflight > 0:
                self._inflight -= 1
                self._delivered += 1
                DELIVERED.inc()
            self._cond.notify_all()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        watcher = self._watched.get(msg.topic)
        if watcher is not None:
            try:
                watcher(bytes(msg.payload))
            except Exception:  # a bad message must not kill paho's network thread
                log.exception("handling MQTT message on %s failed", msg.topic)
            return
        name = self.topics.command_name(msg.topic)
        if name is None:
            return
        props = getattr(msg, "properties", None)
        response_topic = getattr(props, "ResponseTopic", None) if props else None
        correlation = getattr(props, "CorrelationData", None) if props else None
        self._executor.submit(
            self._run_command, name, bytes(msg.payload), response_topic, correlation
        )

    def _run_command(
        self, name: str, payload: bytes, response_topic: str | None, correlation: bytes | None
    ) -> None:
        response = self.router.execute(name, payload)
        props = None
        if self._protocol == "v5":
            props = Properties(PacketTypes.PUBLISH)
            props.ContentType = "application/json"
            if correlation is not None:
                props.CorrelationData = correlation
        topic = response_topic or self.topics.response(name)
        self.client.publish(topic, dump(response), qos=self.cfg.qos, properties=props)


def new_event_id() -> str:
    return str(uuid.uuid4())
