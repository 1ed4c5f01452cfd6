"""The access log an operator reads: one line per request with method, path, status, the
contract code, the request id and the latency; probes only at DEBUG; the optional JSON
form; never a query value, an image or a key. Plus the start log's last line and the
401 that says where the key is kept."""

from __future__ import annotations

import base64
import http.client
import json
import logging
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge.api.app import create_app
from edge.config import load_settings
from edge.logsetup import TEXT_FORMAT
from tests.support.net import free_port
from tests.support.servers import (
    KEY_A,
    Gate,
    add_test_routes,
    serve_process,
    start_server,
    stop_server,
    write_serve_config,
)

SECRET_QUERY = "q-value-that-must-not-be-logged"


def _call(
    port: int, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        data = json.dumps(body).encode() if body is not None else None
        hdrs = {"Content-Type": "application/json", **(headers or {})} if data else headers or {}
        conn.request(method, path, body=data, headers=hdrs)
        r = conn.getresponse()
        raw = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, raw
    finally:
        conn.close()


@pytest.fixture(scope="module")
def json_served(
    tmp_path_factory: pytest.TempPathFactory, model_dir: Path, testdata: Path
) -> Iterator[dict[str, Any]]:
    """A real `edge-face serve --log-format json`, exercised, stopped; its log parsed."""
    tmp = tmp_path_factory.mktemp("access")
    cfg = write_serve_config(tmp, model_dir, "acc")
    port = free_port()
    log = tmp / "serve.log"
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("EDGE_")}
    proc = serve_process(cfg, port, log, "--log-format", "json", env=env)
    photo = base64.b64encode(
        (testdata / "faces_by_identity" / "barack_obama" / "1.jpg").read_bytes()
    )
    calls: dict[str, Any] = {"port": port, "photo": photo.decode()}
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if _call(port, "GET", "/readyz")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        assert proc.poll() is None, log.read_text()
        # The ready line is written by the notifier, which polls readiness every 0.25 s.
        while time.monotonic() < deadline and '"ready: http' not in log.read_text():
            time.sleep(0.1)
        _call(port, "GET", "/healthz")
        _call(port, "GET", "/metrics")
        calls["401"] = _call(
            port,
            "GET",
            f"/api/v1/entities/faces?collection={SECRET_QUERY}",
            headers={"x-request-id": "rid-unauthorised-1"},
        )
        calls["113"] = _call(
            port,
            "POST",
            "/api/v1/entities/faces/detect",
            {"model": "NO_SUCH_MODEL", "image": {"data": calls["photo"]}},
            {"api-key": KEY_A, "x-request-id": "rid-bad-model-1"},
        )
        calls["200"] = _call(
            port,
            "POST",
            "/api/v1/entities/faces/detect",
            {"model": "EDGE_FACE_V1", "image": {"data": calls["photo"]}},
            {"api-key": KEY_A},
        )
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    calls["text"] = log.read_text()
    calls["records"] = [json.loads(line) for line in calls["text"].splitlines() if line.strip()]
    yield calls


def _access(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r["logger"] == "edge.access"]


def test_every_log_line_is_one_json_object(json_served: dict[str, Any]) -> None:
    records = json_served["records"]  # json.loads of every line already succeeded
    assert len(records) >= 5
    for r in records:
        assert {"ts", "level", "logger", "msg"} <= set(r), r
        assert r["ts"].endswith("Z")


def test_error_access_line_has_request_id_code_and_latency(json_served: dict[str, Any]) -> None:
    status, headers, _ = json_served["401"]
    assert status == 401 and headers["x-request-id"] == "rid-unauthorised-1"
    lines = [r for r in _access(json_served["records"]) if r["request_id"] == "rid-unauthorised-1"]
    assert len(lines) == 1
    line = lines[0]
    assert line["level"] == "INFO"
    assert (line["method"], line["path"], line["status"], line["code"]) == (
        "GET",
        "/api/v1/entities/faces",
        401,
        401,
    )
    assert isinstance(line["latency_ms"], float) and line["latency_ms"] >= 0
    assert "rid-unauthorised-1" in line["msg"] and "code=401" in line["msg"]

    bad_model = [r for r in _access(json_served["records"]) if r["request_id"] == "rid-bad-model-1"]
    assert [(r["status"], r["code"]) for r in bad_model] == [(400, 113)]
    assert len(bad_model[0]["key_id"]) == 12  # a hash prefix of the key, not the key


def test_success_line_has_no_code(json_served: dict[str, Any]) -> None:
    status, headers, _ = json_served["200"]
    assert status == 200
    ok = [r for r in _access(json_served["records"]) if r["request_id"] == headers["x-request-id"]]
    assert [(r["path"], r["status"], r["code"]) for r in ok] == [
        ("/api/v1/entities/faces/detect", 200, None)
    ]


def test_probes_are_not_logged_at_info(json_served: dict[str, Any]) -> None:
    paths = {r["path"] for r in _access(json_served["records"])}
    assert not paths & {"/readyz", "/healthz", "/metrics"}
    assert "/api/v1/entities/faces/detect" in paths


def test_no_query_value_image_or_key_is_logged(json_served: dict[str, Any]) -> None:
    text = json_served["text"]
    assert SECRET_QUERY not in text
    assert KEY_A not in text
    assert json_served["photo"][1000:1100] not in text


def test_start_log_ends_with_url_docs_and_key_location(json_served: dict[str, Any]) -> None:
    port = json_served["port"]
    server_lines = [r["msg"] for r in json_served["records"] if r["logger"] == "edge.server"]
    ready = [m for m in server_lines if m.startswith("ready:")]
    assert ready == [
        f"ready: http://127.0.0.1:{port} - API docs http://127.0.0.1:{port}/docs - "
        "api-key: one of server.api_keys in the config"
    ]
    assert (
        server_lines.index(ready[0])
        == server_lines.index(f"listening on http://127.0.0.1:{port}") + 1
    )


def test_unknown_model_lists_the_valid_names(json_served: dict[str, Any]) -> None:
    status, _, raw = json_served["113"]
    body = json.loads(raw)
    assert (status, body["code"]) == (400, 113)
    assert "NO_SUCH_MODEL" in body["message"]
    for name in ("EDGE_FACE_V1", "JCV_FACE_K25000", "JCV_FACE_J10000"):
        assert name in body["message"]


# In-process: the text form, the 500 line, and the 401 naming the key file --------------------
def test_text_error_lines_carry_request_id_and_code(
    tmp_path: Path, model_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = load_settings(None, data_dir=tmp_path, models={"dir": model_dir})
    app = create_app(settings, load_models=False, announce=lambda _m: None)
    add_test_routes(app, Gate())
    srv = start_server(app, settings)
    key = (tmp_path / "api-key").read_text().strip()
    try:
        with caplog.at_level(logging.INFO):
            status, _, raw = _call(srv.port, "GET", "/api/v1/entities/faces")
            assert status == 401
            message = json.loads(raw)["message"]
            assert f"the key kept in {tmp_path / 'api-key'} on the server" in message
            assert key not in message
            status, _, _ = _call(
                srv.port, "POST", "/test/boom", {"a": 1}, {"api-key": key, "x-request-id": "r-500"}
            )
            assert status == 500
            # the access line is written just after the response was sent
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not any(
                "r-500" in r.getMessage() for r in caplog.records if r.name == "edge.access"
            ):
                time.sleep(0.05)
    finally:
        stop_server(srv)
    fmt = logging.Formatter(TEXT_FORMAT)
    access = [fmt.format(r) for r in caplog.records if r.name == "edge.access"]
    boom = [line for line in access if "r-500" in line]
    assert len(boom) == 1
    assert " INFO edge.access: POST /test/boom 500 code=500 " in boom[0]
    assert "rid=r-500" in boom[0]
    errors = [fmt.format(r) for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("request_id=r-500" in e and "Traceback" in e for e in errors)
    assert all(key not in fmt.format(r) for r in caplog.records)
