"""A real mosquitto broker on a free loopback port, plus a collecting subscriber.

The one test broker: the `broker` fixture of tests/conftest.py starts one per test (mqtt,
camera and serve tests alike). Persistence is on so that a subscriber's
session (and the retained status) survive a broker restart, as on a production broker.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import queue
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tests.support.net import free_port


class Broker:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.exe = exe
        (workdir / "db").mkdir(parents=True, exist_ok=True)
        self.conf = workdir / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            # Started as root, mosquitto would switch to its own user and lose the tmp dir.
            f"user {getpass.getuser()}\n"
            "persistence true\n"
            f"persistence_location {workdir / 'db'}/\n"
            f"log_dest file {workdir / 'mosquitto.log'}\n"
        )

    def start(self) -> None:
        self.proc = subprocess.Popen([self.exe, "-c", str(self.conf)])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not start on port {self.port}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: mosquitto saves its persistence file
            self.proc.wait(10)
        self.proc = None


class Subscriber:
    """A paho client that collects (topic, payload-json, properties) tuples."""

    def __init__(
        self,
        port: int,
        topics: list[str],
        *,
        client_id: str | None = None,
        persistent: bool = False,
    ) -> None:
        self.port = port
        self.messages: queue.Queue[tuple[str, Any, Any, bool]] = queue.Queue()
        self.history: list[tuple[str, Any, Any, bool]] = []  # everything, in arrival order
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id or f"test-{uuid.uuid4().hex[:8]}",
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        self._topics = topics
        self._persistent = persistent
        self._subscribed = queue.Queue[bool]()
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self._subscribed.put(True)

    def _on_connect(self, client: mqtt.Client, u: Any, flags: Any, rc: Any, props: Any) -> None:
        for t in self._topics:
            client.subscribe(t, qos=1)

    def _on_message(self, client: mqtt.Client, u: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            body = json.loads(msg.payload.decode())
        except ValueError:
            body = msg.payload
        item = (msg.topic, body, msg.properties, bool(msg.retain))
        self.history.append(item)
        self.messages.put(item)

    def connect(self) -> Subscriber:
        props = None
        if self._persistent:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 3600
        self.client.connect(
            "127.0.0.1", self.port, 30, clean_start=not self._persistent, properties=props
        )
        self.client.loop_start()
        for _ in self._topics:
            self._subscribed.get(timeout=10)
        return self

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def wait_for(
        self, pred: Callable[[str, Any], bool], timeout: float = 10.0
    ) -> tuple[str, Any, Any, bool]:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no matching MQTT message")
            try:
                topic, body, props, retained = self.messages.get(timeout=left)
            except queue.Empty:
                continue
            if pred(topic, body):
                return topic, body, props, retained

    def collect(self, topic: str, count: int, timeout: float = 10.0) -> list[Any]:
        out: list[Any] = []
        while len(out) < count:
            _t, body, _p, _r = self.wait_for(lambda t, _b: t == topic, timeout)
            out.append(body)
        return out

    def publish(self, topic: str, payload: bytes, properties: Properties | None = None) -> None:
        self.client.publish(topic, payload, qos=1, properties=properties).wait_for_publish(5)


class V311OnlyFront:
    """TEST DOUBLE for a broker that only speaks MQTT v3.1.1 (mosquitto cannot be told to
    refuse v5): answers a v5 CONNECT with "unacceptable protocol version" and relays every
    other connection byte for byte to the real mosquitto behind it."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.levels: list[int] = []  # protocol level of each CONNECT seen
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = int(self.sock.getsockname()[1])
        threading.Thread(target=self._serve, daemon=True).start()

    @staticmethod
    def _relay(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            first = conn.recv(65536)
            i = 1
            while first[i] & 0x80:  # skip the variable-length "remaining length"
                i += 1
            level = first[i + 1 + 6]  # after the 00 04 "MQTT" protocol name
            self.levels.append(level)
            if level == 5:
                conn.sendall(bytes([0x20, 0x02, 0x00, 0x01]))  # v3 CONNACK, rc=1
                conn.close()
                continue
            up = socket.create_connection(("127.0.0.1", self.upstream_port))
            up.sendall(first)
            threading.Thread(target=self._relay, args=(conn, up), daemon=True).start()
            threading.Thread(target=self._relay, args=(up, conn), daemon=True).start()

    def close(self) -> None:
        self.sock.close()
