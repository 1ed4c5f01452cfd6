"""`edge-face serve` as a real process: listening log, SIGTERM drain, exit code 0."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.net import free_port
from tests.support.servers import KEY_A, serve_process, write_serve_config


def _get(port: int, path: str) -> int | None:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
            head = s.recv(64)
        return int(head.split(b" ")[1])
    except (OSError, IndexError, ValueError):
        return None


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def _wait(cond, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class NotifySocket:
    """A real AF_UNIX datagram socket standing where systemd's NOTIFY_SOCKET would be;
    a thread reads it continuously, as systemd does."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.received: list[str] = []
        self.closed = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        while not self.closed.is_set():
            try:
                self.received.append(self.sock.recv(4096).decode())
            except TimeoutError:
                continue
            except OSError:
                return

    def close(self) -> None:
        self.closed.set()
        self.thread.join(5)
        self.sock.close()


@pytest.fixture
def notify_socket() -> Iterator[NotifySocket]:
    d = Path(tempfile.mkdtemp(prefix="sdn"))  # AF_UNIX paths must stay short
    ns = NotifySocket(d / "notify")
    yield ns
    ns.close()
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def served(
    request: pytest.FixtureRequest, tmp_path: Path, model_dir: Path, notify_socket: NotifySocket
) -> Iterator[tuple[subprocess.Popen[str], int, Path]]:
    drain_seconds = getattr(request, "param", 30)
    port = free_port()
    cfg = write_serve_config(tmp_path, model_dir, "drain", drain_seconds=drain_seconds)
    log = tmp_path / "serve.log"
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "NOTIFY_SOCKET": str(notify_socket.path),
        "WATCHDOG_USEC": "200000",
    }
    env.pop("WATCHDOG_PID", None)
    proc = serve_process(cfg, port, log, env=env, text=True)
    try:
        _wait(lambda: _get(port, "/readyz") == 200 or proc.poll() is not None, 120, "ready")
        assert proc.poll() is None, log.read_text()
        yield proc, port, log
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)


def test_logs_listening_address_and_models_and_notifies_systemd(
    served: tuple[subprocess.Popen[str], int, Path], notify_socket: NotifySocket
) -> None:
    proc, port, log = served
    text = log.read_text()
    assert f"listening on http://127.0.0.1:{port}" in text
    assert "model embedding runs on openvino/" in text
    assert KEY_A not in text
    _wait(lambda: "READY=1" in notify_socket.received, 30, "READY=1")
    _wait(lambda: notify_socket.received.count("WATCHDOG=1") >= 2, 30, "watchdog pings")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0
    assert "STOPPING=1" in notify_socket.received


def test_sigterm_lets_the_request_in_flight_finish(
    served: tuple[subprocess.Popen[str], int, Path], testdata: Path
) -> None:
    proc, port, log = served
    image = base64.b64encode(
        (testdata / "faces_by_identity" / "barack_obama" / "1.jpg").read_bytes()
    )
    body = json.dumps({"model": "EDGE_FACE_V1", "image": {"data": image.decode()}}).encode()
    head = (
        f"POST /api/v1/entities/faces/detect HTTP/1.1\r\nHost: t\r\napi-key: {KEY_A}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "Expect: 100-continue\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        s.sendall(head)
        # "100 Continue" proves the request was routed: it is in flight from here on
        assert s.recv(64).startswith(b"HTTP/1.1 100")
        s.sendall(body[: len(body) // 2])
        proc.send_signal(signal.SIGTERM)
        _wait(lambda: _refused(port), 30, "the listener to close")  # no new connections
        assert proc.poll() is None  # ...but the process waits for our request
        s.sendall(body[len(body) // 2 :])
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    answer = b"".join(chunks)
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.split(b" ")[1] == b"200", answer[:500]
    assert json.loads(rest.split(b"\r\n\r\n", 1)[1])["count"] >= 1
    assert proc.wait(60) == 0, log.read_text()
    assert "draining" in log.read_text()


@pytest.mark.parametrize("served", [1], indirect=True)
def test_drain_time_is_bounded_and_exit_is_still_clean(
    served: tuple[subprocess.Popen[str], int, Path],
) -> None:
    """A client that never finishes its upload cannot hold the shutdown past drain_seconds."""
    proc, port, log = served
    head = (
        f"POST /api/v1/entities/faces/detect HTTP/1.1\r\nHost: t\r\napi-key: {KEY_A}\r\n"
        "Content-Type: application/json\r\nContent-Length: 100000\r\n"
        "Expect: 100-continue\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        s.sendall(head)
        assert s.recv(64).startswith(b"HTTP/1.1 100")
        s.sendall(b'{"model": "EDGE_FACE_V1", ')
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, log.read_text()
        assert s.recv(65536) == b""  # the stalled request was cut, not answered
    assert "drain time over: 1 requests" in log.read_text()
