"""The box makes no network connection its owner did not configure.

The real service runs through start, enrol, search, liveness and stop with a real MQTT
broker configured, under two independent auditors:

- a Python audit hook (`sys.addaudithook`) installed before anything is imported, which sees
  every socket connect/sendto/bind and every name lookup made from Python code;
- `strace -f` on the whole process tree (where strace exists), which also sees connections
  made by native code (OpenVINO, onnxruntime, the C resolver).

Any destination outside loopback fails the test, and so does a file written by vendor
telemetry into the (temporary, existing) home directory. The home must exist: the telemetry
client that `import openvino` starts stays silent when it has nowhere to write its client id.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml

from tests.support.broker import Broker
from tests.support.net import free_port, json_call
from tests.support.paths import REPO_ROOT

KEY = "outbound-audit-key-0123456789"

# Runs in the service process before `edge` is imported: logs every socket event as JSON.
_BOOTSTRAP = r"""
import json, os, runpy, sys, threading
_log = open(os.environ["EDGE_AUDIT_LOG"], "a", buffering=1)
_lock = threading.Lock()
_EVENTS = {"socket.connect", "socket.sendto", "socket.sendmsg", "socket.bind",
           "socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyname_ex",
           "socket.gethostbyaddr", "socket.getnameinfo"}
def _hook(event, args):
    if event not in _EVENTS:
        return
    if event in ("socket.connect", "socket.sendto", "socket.bind"):
        target = args[1]
    elif event == "socket.sendmsg":
        target = args[1] if len(args) > 1 else None
    else:
        target = args[0]
    if isinstance(target, bytes):
        target = target.decode("utf-8", "replace")
    if isinstance(target, tuple):
        target = [t.decode("utf-8", "replace") if isinstance(t, bytes) else t for t in target]
    with _lock:
        _log.write(json.dumps([event, target], default=repr) + "\n")
sys.addaudithook(_hook)
sys.argv = ["edge-face", *sys.argv[1:]]
runpy.run_module("edge.cli", run_name="__main__", alter_sys=True)
"""

_LOOPBACK_NAMES = {"localhost", "ip6-localhost", "ip6-loopback"}


def _is_loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def _audit_violations(log: Path) -> tuple[list[str], list[Any]]:
    """(violations, every inet target seen) from the audit hook's log."""
    bad: list[str] = []
    seen: list[Any] = []
    for line in log.read_text().splitlines():
        event, target = json.loads(line)
        if target is None or (isinstance(target, str) and target.startswith(("/", "\0", "@"))):
            continue  # AF_UNIX (the systemd notify socket, if any)
        if event == "socket.bind" and isinstance(target, list) and target[1] == 0:
            continue  # a client's ephemeral local address (paho binds ("", 0)), no listener
        host = target[0] if isinstance(target, list) else str(target)
        seen.append([event, target])
        if host is None or not _is_loopback(str(host)):
            bad.append(f"{event} {target}")
    return bad, seen


_STRACE_INET = re.compile(r'inet_addr\("([^"]+)"\)|inet_pton\(AF_INET6, "([^"]+)"')


def _strace_violations(log: Path) -> tuple[list[str], int]:
    """(non-loopback inet connect/sendto lines, number of inet calls seen) from strace -f."""
    bad: list[str] = []
    inet = 0
    for line in log.read_text(errors="replace").splitlines():
        if "AF_INET" not in line or not re.search(r"\b(connect|sendto|sendmsg)\(", line):
            continue
        m = _STRACE_INET.search(line)
        if not m:
            continue
        inet += 1
        if not _is_loopback(m.group(1) or m.group(2)):
            bad.append(line.strip())
    return bad, inet


def _call(port: int, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    return json_call(port, method, path, body, key=KEY, timeout=120)


def _image(path: Path) -> dict[str, str]:
    return {"data": base64.b64encode(path.read_bytes()).decode()}


def _wait_ready(proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            if _call(port, "GET", "/readyz")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise AssertionError("service did not become ready:\n" + log.read_text()[-3000:])


@pytest.mark.slow
def test_service_round_trip_makes_no_outbound_connection(
    tmp_path: Path, model_dir: Path, testdata: Path
) -> None:
    broker = Broker(tmp_path / "broker")
    broker.start()
    try:
        home = tmp_path / "home"
        home.mkdir()
        port = free_port()
        cfg = tmp_path / "edge.yaml"
        cfg.write_text(
            yaml.safe_dump(
                {
                    "data_dir": str(tmp_path / "data"),
                    "models": {"dir": str(model_dir)},
                    "server": {
                        "host": "127.0.0.1",
                        "port": port,
                        "api_keys": [{"key": KEY, "instance": "audit"}],
                    },
                    "mqtt": {"enabled": True, "host": "127.0.0.1", "port": broker.port},
                }
            )
        )
        audit = tmp_path / "audit.jsonl"
        trace = tmp_path / "strace.log"
        env = {k: v for k, v in os.environ.items() if k not in ("CI", "TF_BUILD", "JENKINS_URL")}
        env.update(HOME=str(home), EDGE_AUDIT_LOG=str(audit), PYTHONUNBUFFERED="1")
        cmd = [sys.executable, "-c", _BOOTSTRAP, "serve", "--config", str(cfg)]
        strace = shutil.which("strace")
        if strace:
            cmd = [strace, "-f", "-qq", "-e", "trace=connect,sendto,sendmsg", "-o", str(trace),
                   *cmd]  # fmt: skip
        log = tmp_path / "serve.log"
        with log.open("w") as out:
            proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT,
                                    env=env)  # fmt: skip
        try:
            _wait_ready(proc, port, log)
            people = testdata / "faces_by_identity" / "barack_obama"
            status, created = _call(
                port, "POST", "/api/v1/entities/faces",
                {"model": "JCV_FACE_K25000", "image": _image(people / "1.jpg"), "key": "obama"},
            )  # fmt: skip
            assert status == 201, created
            status, found = _call(
                port, "POST", "/api/v1/entities/faces/search",
                {"model": "JCV_FACE_K25000", "image": _image(people / "2.jpg"), "threshold": 0.8},
            )  # fmt: skip
            assert status == 200 and found["entitiesFound"][0]["uuid"] == created["uuid"], found
            live = sorted((testdata / "liveness" / "live").iterdir())[0]
            status, verdict = _call(
                port, "POST", "/api/v1/liveness",
                {"model": "EDGE_LIVENESS_V1",
                 "images": [{"index": 0, "type": "RGB", **_image(live)}]},
            )  # fmt: skip
            assert status == 200, verdict
            time.sleep(6)  # vendor telemetry posts from a background thread a few seconds in
        finally:
            # Under strace the service is strace's child: signal the service itself.
            target = psutil.Process(proc.pid).children() if strace else []
            (target[0] if target else psutil.Process(proc.pid)).send_signal(signal.SIGTERM)
            rc = proc.wait(60)
        assert rc == 0, log.read_text()[-3000:]
    finally:
        broker.stop()

    bad, seen = _audit_violations(audit)
    assert not bad, f"outbound network use outside loopback: {bad}"
    # The auditor works: it saw the configured broker connection (so it can also see others).
    assert any(e == "socket.connect" and t[1] == broker.port for e, t in seen), seen
    if strace:
        native_bad, inet_calls = _strace_violations(trace)
        assert not native_bad, f"native outbound connections: {native_bad[:5]}"
        assert inet_calls > 0  # the broker connection showed up here too
    written = sorted(str(p.relative_to(home)) for p in home.rglob("*"))
    assert written == [], f"the service wrote into the user's home: {written}"


def test_importing_openvino_and_nncf_through_edge_sends_nothing(tmp_path: Path) -> None:
    """The vendor telemetry guard holds for the libraries that ship telemetry clients."""
    pytest.importorskip("nncf")
    home = tmp_path / "home"
    home.mkdir()
    audit = tmp_path / "audit.jsonl"
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "TF_BUILD", "JENKINS_URL")}
    env.update(HOME=str(home), EDGE_AUDIT_LOG=str(audit))
    script = _BOOTSTRAP.replace(
        'sys.argv = ["edge-face", *sys.argv[1:]]\nrunpy.run_module("edge.cli", '
        'run_name="__main__", alter_sys=True)',
        "import edge, openvino, nncf, time\n"
        "from openvino_telemetry import Telemetry\n"
        "Telemetry().send_event('probe', 'probe', 'probe', force_send=True)\n"
        "time.sleep(3)\n",
    )
    assert "openvino, nncf" in script  # the replacement happened
    subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, env=env, check=True,
                   timeout=300)  # fmt: skip
    bad, _ = _audit_violations(audit)
    assert not bad, bad
    assert sorted(home.rglob("*")) == []
