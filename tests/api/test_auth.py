"""api-key generation on first start, reuse on restart, and configured keys."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest

from edge.api.app import create_app
from edge.config import load_settings
from tests.support.servers import Gate, add_test_routes, start_server, stop_server


def test_first_start_generates_a_0600_key_printed_once_then_reused(
    tmp_path: Path,
    model_dir: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = load_settings(None, data_dir=tmp_path / "data", models={"dir": model_dir})
    path = settings.api_key_path
    assert not path.exists()

    create_app(settings, load_models=False)
    out = capsys.readouterr().out
    key = path.read_text().strip()
    assert len(key) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert out.count(key) == 1  # printed once, on stdout

    app = create_app(settings, load_models=False)  # restart: same key, nothing printed
    assert capsys.readouterr().out == ""
    assert path.read_text().strip() == key

    add_test_routes(app, Gate())
    srv = start_server(app, settings)
    try:
        assert srv.call("POST", "/test/echo", {"a": 1}, key=key).json == {
            "instance": "default",
            "keys": ["a"],
        }
        assert srv.call("POST", "/test/echo", {"a": 1}, key=key + "x").status == 401
    finally:
        stop_server(srv)
    assert key not in caplog.text  # never logged


def test_configured_keys_create_no_key_file(
    tmp_path: Path, model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = load_settings(
        None,
        data_dir=tmp_path / "data",
        models={"dir": model_dir},
        server={"api_keys": [{"key": "configured-key-123", "instance": "i1"}]},
    )
    create_app(settings, load_models=False)
    assert not settings.api_key_path.exists()
    assert capsys.readouterr().out == ""
