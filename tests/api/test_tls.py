"""Built-in HTTPS: `server.tls_cert_file` + `tls_key_file`, a real `edge-face serve` on loopback."""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.support.net import free_port
from tests.support.paths import REPO_ROOT
from tests.support.servers import KEY_A, write_serve_config


def _self_signed(tmp: Path, name: str) -> tuple[Path, Path]:
    """A fresh certificate for 127.0.0.1/localhost and its key, made by the openssl CLI."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is not installed (apt-get install openssl)")
    cert, key = tmp / f"{name}.pem", tmp / f"{name}.key"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


def _with_tls(cfg: Path, cert: Path, key: Path) -> None:
    data = yaml.safe_load(cfg.read_text())
    data["server"].update(tls_cert_file=str(cert), tls_key_file=str(key))
    cfg.write_text(yaml.safe_dump(data))


def _serve(cfg: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "edge.cli", "serve", "-c", str(cfg), "--port", str(port)],
            cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip


def test_serves_https_with_the_configured_certificate(tmp_path: Path, model_dir: Path) -> None:
    cert, key = _self_signed(tmp_path, "box")
    cfg = write_serve_config(tmp_path, model_dir, "tls")
    _with_tls(cfg, cert, key)
    port = free_port()
    log = tmp_path / "serve.log"
    proc = _serve(cfg, port, log)
    trusted = ssl.create_default_context(cafile=str(cert))
    try:
        deadline = time.monotonic() + 180
        status = None
        while time.monotonic() < deadline and proc.poll() is None:
            conn = http.client.HTTPSConnection("127.0.0.1", port, context=trusted, timeout=10)
            try:
                conn.request("GET", "/readyz")
                status = conn.getresponse().status
                if status == 200:
                    break
            except OSError:
                pass
            finally:
                conn.close()
            time.sleep(0.3)
        assert status == 200, log.read_text()[-3000:]
        # The ready line comes from the notifier, which polls readiness every 0.25 s.
        while time.monotonic() < deadline and "ready: https" not in log.read_text():
            time.sleep(0.1)

        conn = http.client.HTTPSConnection("127.0.0.1", port, context=trusted, timeout=10)
        conn.request("GET", "/api/v1/models", headers={"api-key": KEY_A})
        assert conn.getresponse().status == 200
        conn.close()

        # A client that does not trust the certificate is refused by its own TLS check.
        with pytest.raises(ssl.SSLCertVerificationError):
            strict = http.client.HTTPSConnection(
                "127.0.0.1", port, context=ssl.create_default_context(), timeout=10
            )
            strict.request("GET", "/readyz")
        # Plain HTTP on the HTTPS port gets no HTTP answer.
        plain = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        with pytest.raises((http.client.HTTPException, OSError)):
            plain.request("GET", "/readyz")
            plain.getresponse()
        plain.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    text = log.read_text()
    assert f"listening on https://127.0.0.1:{port}" in text
    assert f"ready: https://127.0.0.1:{port} - API docs https://127.0.0.1:{port}/docs" in text


def test_a_key_that_does_not_match_fails_the_start_in_one_line(
    tmp_path: Path, model_dir: Path
) -> None:
    cert, _ = _self_signed(tmp_path, "one")
    _, other_key = _self_signed(tmp_path, "two")
    cfg = write_serve_config(tmp_path, model_dir, "tls")
    _with_tls(cfg, cert, other_key)
    proc = subprocess.run(
        [sys.executable, "-m", "edge.cli", "serve", "-c", str(cfg), "--port", str(free_port())],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stdout + proc.stderr
    err = proc.stderr.strip()
    assert "server.tls_cert_file" in err and "Traceback" not in err
    assert "runs on" not in proc.stdout + proc.stderr  # failed before any model loaded


def test_half_a_tls_pair_is_a_config_error(tmp_path: Path, model_dir: Path) -> None:
    cert, _ = _self_signed(tmp_path, "half")
    cfg = write_serve_config(tmp_path, model_dir, "tls")
    data = yaml.safe_load(cfg.read_text())
    data["server"]["tls_cert_file"] = str(cert)
    cfg.write_text(yaml.safe_dump(data))
    proc = subprocess.run(
        [sys.executable, "-m", "edge.cli", "config", "show", "-c", str(cfg)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "tls_key_file" in proc.stderr and "Traceback" not in proc.stderr
